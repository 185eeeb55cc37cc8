"""Container probes' state machine, as the kubelet's probe workers run it (pure;
pkg/kubelet/prober/worker.go): each probe kind has a result that starts at its initial
value (readiness: failure, liveness: success, startup: unknown) and changes only after
``successThreshold`` successes or ``failureThreshold`` failures in a row. Liveness and
readiness are not run until the startup probe has succeeded (the container has
"started"); the startup probe stops once it has. A liveness or startup result of failure
means the container is killed (and restarted per restartPolicy); its worker then waits for
the next container (``on_hold``). A new container starts every worker afresh, its first run
``initialDelaySeconds`` after the container started. lab/probe_runner.py runs the probes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from agent.model.core import Container
from agent.model.core_container import Probe


class Kind(StrEnum):
    STARTUP = "Startup"
    LIVENESS = "Liveness"
    READINESS = "Readiness"


_INITIAL = {Kind.STARTUP: None, Kind.LIVENESS: True, Kind.READINESS: False}


@dataclass(frozen=True, slots=True)
class Worker:
    kind: Kind
    probe: Probe
    result: bool | None  # None: unknown (a startup probe that has not succeeded yet)
    next_due: float  # monotonic seconds
    last: bool | None = None  # the last run's outcome
    run: int = 0  # how many runs in a row had that outcome
    on_hold: bool = False  # failed liveness/startup: nothing more until a new container


def workers(container: Container, started_at: float) -> dict[Kind, Worker]:
    """Fresh workers for a container (just) started at ``started_at``."""
    specs = {Kind.STARTUP: container.startup_probe, Kind.LIVENESS: container.liveness_probe,
             Kind.READINESS: container.readiness_probe}
    return {kind: Worker(kind, probe, _INITIAL[kind], started_at + probe.initial_delay_seconds)
            for kind, probe in specs.items() if probe is not None}


def started(ws: dict[Kind, Worker]) -> bool:
    """The container counts as started (``status.containerStatuses[].started``): it has no
    startup probe, or that probe has succeeded."""
    w = ws.get(Kind.STARTUP)
    return w is None or w.result is True


def due(ws: dict[Kind, Worker], now: float) -> list[Kind]:
    """The probes to run now: startup until it succeeds, then liveness and readiness."""
    out = []
    for kind, w in ws.items():
        if w.on_hold or now < w.next_due:
            continue
        if kind is Kind.STARTUP and w.result is True:
            continue
        if kind is not Kind.STARTUP and not started(ws):
            continue
        out.append(kind)
    return out


def record(w: Worker, success: bool, now: float) -> Worker:
    """``w`` after a run that ended at ``now`` with ``success``."""
    run = w.run + 1 if w.last is success else 1
    w = replace(w, last=success, run=run, next_due=now + w.probe.period_seconds)
    threshold = w.probe.success_threshold if success else w.probe.failure_threshold
    if run < threshold:
        return w  # not enough in a row: the result stays
    w = replace(w, result=success)
    if not success and w.kind is not Kind.READINESS:
        w = replace(w, on_hold=True, run=0)
    return w


def kill_reason(ws: dict[Kind, Worker]) -> Kind | None:
    """The probe whose failure means the container must be killed, if any."""
    for kind in (Kind.STARTUP, Kind.LIVENESS):
        w = ws.get(kind)
        if w is not None and w.result is False:
            return kind
    return None


def ready(ws: dict[Kind, Worker]) -> bool | None:
    """The readiness probe's verdict (and started); None: the container has none."""
    w = ws.get(Kind.READINESS)
    if w is None:
        return None
    return started(ws) and w.result is True
