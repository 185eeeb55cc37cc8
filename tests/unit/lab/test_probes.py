"""The probe workers' state machine (lab.probes), as pkg/kubelet/prober/worker.go runs it."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Container, Pod
from lab import probes
from lab.probes import Kind

EXEC = {"exec": {"command": ["check"]}}


def _container(**spec: Any) -> Container:
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", **spec}]}})
    assert isinstance(pod, Pod)
    return pod.spec.containers[0]


def _run(ws: dict[Kind, probes.Worker], kind: Kind, *outcomes: bool) -> None:
    for ok in outcomes:
        ws[kind] = probes.record(ws[kind], ok, ws[kind].next_due)


def test_initial_results_and_first_run_after_the_initial_delay() -> None:
    ws = probes.workers(_container(
        livenessProbe={**EXEC, "initialDelaySeconds": 5},
        readinessProbe={**EXEC, "periodSeconds": 2}), started_at=100.0)
    assert ws[Kind.LIVENESS].result is True and ws[Kind.READINESS].result is False
    assert probes.due(ws, 100.0) == [Kind.READINESS]
    assert set(probes.due(ws, 105.0)) == {Kind.LIVENESS, Kind.READINESS}
    ws[Kind.READINESS] = probes.record(ws[Kind.READINESS], True, 100.0)
    assert ws[Kind.READINESS].next_due == 102.0  # periodSeconds after the run
    assert probes.ready(ws) is True


def test_a_container_without_probes_is_started_and_has_no_verdict() -> None:
    ws = probes.workers(_container(), 0.0)
    assert ws == {} and probes.started(ws) and probes.ready(ws) is None
    assert probes.kill_reason(ws) is None


def test_readiness_changes_only_after_the_thresholds_in_a_row() -> None:
    ws = probes.workers(_container(readinessProbe={
        **EXEC, "successThreshold": 2, "failureThreshold": 3}), 0.0)
    _run(ws, Kind.READINESS, True)
    assert probes.ready(ws) is False  # one success of two
    _run(ws, Kind.READINESS, False, True)
    assert probes.ready(ws) is False  # the run was broken
    _run(ws, Kind.READINESS, True)
    assert probes.ready(ws) is True
    _run(ws, Kind.READINESS, False, False)
    assert probes.ready(ws) is True  # two failures of three
    _run(ws, Kind.READINESS, False)
    assert probes.ready(ws) is False
    assert probes.kill_reason(ws) is None  # readiness never kills
    assert probes.due(ws, ws[Kind.READINESS].next_due) == [Kind.READINESS]  # and goes on


def test_liveness_failure_kills_once_and_holds_until_a_new_container() -> None:
    c = _container(livenessProbe={**EXEC, "failureThreshold": 2})
    ws = probes.workers(c, 0.0)
    _run(ws, Kind.LIVENESS, False)
    assert probes.kill_reason(ws) is None
    _run(ws, Kind.LIVENESS, False)
    assert probes.kill_reason(ws) is Kind.LIVENESS
    assert probes.due(ws, 1e9) == []  # on hold
    ws = probes.workers(c, 50.0)  # the restarted container
    assert ws[Kind.LIVENESS].result is True and probes.kill_reason(ws) is None


def test_startup_gates_liveness_and_readiness_and_then_stops() -> None:
    ws = probes.workers(_container(
        startupProbe={**EXEC, "failureThreshold": 3},
        livenessProbe=EXEC, readinessProbe=EXEC), 0.0)
    assert not probes.started(ws) and probes.due(ws, 0.0) == [Kind.STARTUP]
    assert probes.ready(ws) is False
    _run(ws, Kind.STARTUP, False, True)
    assert probes.started(ws)
    assert set(probes.due(ws, 1e9)) == {Kind.LIVENESS, Kind.READINESS}


def test_a_startup_probe_that_never_passes_kills_the_container() -> None:
    ws = probes.workers(_container(startupProbe={**EXEC, "failureThreshold": 2}), 0.0)
    _run(ws, Kind.STARTUP, False, False)
    assert probes.kill_reason(ws) is Kind.STARTUP and not probes.started(ws)
