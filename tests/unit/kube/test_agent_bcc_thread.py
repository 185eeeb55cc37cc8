"""The agent's first sync beside its BCC compile (agent/bcc_thread.py, agent/daemon.py): the
first sync plans before the maps exist and writes them once they are attached; the tracer
compiles on the same thread, never at once with the datapath: after the first sync when the
datapath compiled, before the first plan when it was adopted; a compile error or a verifier
rejection on that thread still fails the agent, with its own error."""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agent import bcc_thread, daemon, node_agent
from agent.datapath.controller import DatapathController, DatapathNotLoaded
from agent.flows.store import FlowRing
from bench.control.replan import NoMaps, stub_map_writes
from tests.unit.datapath.test_controller_seam import endpoint_slice, service
from tests.unit.kube.conftest import Lab, account_kubeconfig, free_port
from tests.unit.kube.test_node_agent import wait_for


@pytest.fixture
def controller() -> Iterator[Any]:
    writes: list[Any] = []
    with stub_map_writes(writes):
        dc = DatapathController("n1", None, FlowRing(16))  # type: ignore[arg-type]
        dc.writes = writes  # type: ignore[attr-defined]
        yield dc
        dc.close_netlink()


def test_the_first_sync_plans_before_the_maps_exist_and_writes_once_attached(
    controller: Any,
) -> None:
    objects = [service("x", "10.96.0.1"), endpoint_slice("x", "10.244.1.2", "2")]
    syncing = threading.Thread(target=controller.resync, args=(objects,), daemon=True)
    syncing.start()
    # Planned (the flow enricher's index knows the service) while nothing was written.
    wait_for(lambda: controller.index.service("10.96.0.1", 80) is not None, "the plan")
    assert syncing.is_alive() and controller.writes == []
    with pytest.raises(DatapathNotLoaded, match="not loaded yet"):
        controller.applier  # noqa: B018
    controller.attach(NoMaps())
    syncing.join(5)
    assert not syncing.is_alive()
    assert controller.writes == [(IPv4Address("10.96.0.1"), 80, 6)]


def syncing_with_errors(controller: Any) -> tuple[threading.Thread, list[BaseException]]:
    """A first sync on its own thread, its exception (if any) recorded."""
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            controller.resync([service("x", "10.96.0.1")])
        except BaseException as err:
            errors.append(err)

    syncing = threading.Thread(target=sync, daemon=True)
    syncing.start()
    return syncing, errors


def test_a_failed_load_ends_the_waiting_sync_with_its_reason(controller: Any) -> None:
    syncing, errors = syncing_with_errors(controller)
    controller.attach_failed(RuntimeError("clang: error: boom"))
    syncing.join(5)
    assert not syncing.is_alive() and controller.writes == []
    assert len(errors) == 1 and isinstance(errors[0], DatapathNotLoaded)
    assert "failed to load: clang: error: boom" in str(errors[0])


class MapsOnly(NoMaps):
    """A compile's maps before the verifier loaded its programs; records its close."""

    programs_loaded = False
    closed = False

    def close(self) -> None:
        self.closed = True


def test_the_first_sync_writes_the_compiled_maps_while_the_verifier_runs(
    controller: Any,
) -> None:
    syncing = threading.Thread(target=controller.resync,
                               args=([service("x", "10.96.0.1")],), daemon=True)
    syncing.start()
    early = MapsOnly()
    controller.attach_maps(early)
    wait_for(lambda: controller.writes == [(IPv4Address("10.96.0.1"), 80, 6)], "the writes")
    syncing.join(0.2)
    assert syncing.is_alive()  # not synced: no programs yet
    loaded = NoMaps()
    controller.attach(loaded)
    syncing.join(5)
    assert not syncing.is_alive()
    assert controller.dp is loaded and controller.applier.dp is loaded and early.closed
    assert controller.writes == [(IPv4Address("10.96.0.1"), 80, 6)]  # not written twice


def test_a_verifier_rejection_after_the_maps_ends_the_waiting_sync(controller: Any) -> None:
    syncing, errors = syncing_with_errors(controller)
    controller.attach_maps(MapsOnly())
    wait_for(lambda: controller.writes, "the writes")
    controller.attach_failed(RuntimeError("tulle_from_pod: Permission denied"))
    syncing.join(5)
    assert not syncing.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DatapathNotLoaded)
    assert "Permission denied" in str(errors[0])


class Steps:
    """Records what ran on the BCC thread, whether the maps were attached by then, and whether
    the first plan's gate was open. ``release`` holds the load until the test sets it."""

    def __init__(self, controller: Any, fail: BaseException | None = None,
                 adopted: bool = False) -> None:
        self.controller, self.fail, self.seen = controller, fail, []  # type: list[str]
        self.adopted = adopted  # the load stands for the compile cache's adoption
        self.release = threading.Event()
        self.release.set()
        self.gate: threading.Event | None = None

    def load(self, _pin_dir: Path, _state_dir: Path | None,
             compiling: Any = None, _maps_ready: Any = None) -> Any:
        self.seen.append("load")
        if not self.adopted and compiling is not None:
            compiling()  # as programs.load_datapath does once adopting failed
        assert self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        maps = NoMaps()
        maps.adopted = object() if self.adopted else None  # type: ignore[attr-defined]
        return maps

    def tracer(self) -> None:
        gate = self.gate is not None and self.gate.is_set()
        self.seen.append(("tracer, attached" if self.controller.attached.is_set() else "tracer")
                         + (", plan gate open" if gate else ""))


def start(steps: Steps, controller: Any, synced: threading.Event) -> bcc_thread.DatapathLoad:
    load = bcc_thread.DatapathLoad(Path("/x"), controller, steps.tracer, synced,
                                   threading.Event())
    steps.gate = load.plan_gate()
    return load.start()


def test_a_start_that_compiles_plans_beside_the_compile_and_traces_after_the_first_sync(
    controller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh node: the first plan need not wait for the datapath's compile, and the tracer's
    compile (BCC resident by then) waits for the first sync instead of delaying it."""
    steps = Steps(controller)
    steps.release.clear()
    monkeypatch.setattr(bcc_thread, "load_datapath", steps.load)
    synced = threading.Event()
    load = start(steps, controller, synced)
    assert load.plan_gate().wait(5)  # open while the compile still runs
    assert steps.seen == ["load"] and not controller.attached.is_set()
    steps.release.set()
    assert load.wait() > 0 and load.compiled_datapath
    assert not synced.wait(0.3) and steps.seen == ["load"]
    synced.set()
    wait_for(lambda: len(steps.seen) == 2, "the tracer")
    assert steps.seen == ["load", "tracer, attached, plan gate open"]


def test_after_an_adopted_load_the_tracer_compiles_before_the_first_plan(
    controller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart that adopted its programs (no BCC yet) compiles the tracer before the first
    plan, whose gate opens after it: BCC's memory never stacks on the plan's."""
    steps = Steps(controller, adopted=True)
    monkeypatch.setattr(bcc_thread, "load_datapath", steps.load)
    load = start(steps, controller, threading.Event())
    load.wait()
    assert load.plan_gate().wait(5) and not load.compiled_datapath
    assert steps.seen == ["load", "tracer, attached"]


def test_the_post_compile_trim_runs_after_the_attach(
    controller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trim (malloc_trim, the compiler's file pages: a read of smaps that waits for the
    GIL beside the first plan) runs beside the first sync's writes, not before they may
    start."""
    steps = Steps(controller)
    trims: list[bool] = []
    monkeypatch.setattr(bcc_thread, "load_datapath", steps.load)
    monkeypatch.setattr(bcc_thread, "after_compile",
                        lambda: trims.append(controller.attached.is_set()))
    synced = threading.Event()
    load = start(steps, controller, synced)
    load.wait()
    wait_for(lambda: trims, "the trim")
    assert trims == [True]
    synced.set()  # the BCC thread goes on to the tracer, then ends
    wait_for(lambda: len(steps.seen) == 2, "the tracer")


def test_a_load_started_before_its_controller_hands_over_once_bound(
    controller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon starts the compile right after the lists, before the controller exists:
    the load runs at once and attaches its maps only when bound."""
    steps = Steps(controller)
    monkeypatch.setattr(bcc_thread, "load_datapath", steps.load)
    synced = threading.Event()
    load = bcc_thread.DatapathLoad(Path("/x"), None, None, synced, threading.Event()).start()
    wait_for(lambda: steps.seen == ["load"], "the load, unbound")
    assert not load.done.wait(0.2) and not controller.attached.is_set()
    load.bind(controller, steps.tracer)
    assert load.wait() > 0 and controller.attached.is_set()
    synced.set()
    wait_for(lambda: len(steps.seen) == 2, "the tracer")
    assert steps.seen == ["load", "tracer, attached"]


def test_a_start_that_fails_before_binding_ends_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    steps = Steps(None)
    monkeypatch.setattr(bcc_thread, "load_datapath", steps.load)
    stop = threading.Event()
    load = bcc_thread.DatapathLoad(Path("/x"), None, None, threading.Event(), stop).start()
    wait_for(lambda: steps.seen == ["load"], "the load")
    stop.set()  # as daemon.run's abandon_start
    with pytest.raises(RuntimeError, match="stopped before its datapath was handed over"):
        load.wait()
    assert load.plan_gate().is_set()


@pytest.mark.parametrize("adopted", [False, True])
def test_a_failed_load_skips_the_tracer_and_wait_raises_it(
    controller: Any, monkeypatch: pytest.MonkeyPatch, adopted: bool
) -> None:
    steps = Steps(controller, fail=OSError(1, "Operation not permitted"), adopted=adopted)
    monkeypatch.setattr(bcc_thread, "load_datapath", steps.load)
    load = start(steps, controller, threading.Event())
    with pytest.raises(OSError, match="Operation not permitted"):
        load.wait()
    assert load.plan_gate().wait(5)  # the waiting sync goes on to find the failure
    assert steps.seen == ["load"]
    with pytest.raises(DatapathNotLoaded, match="Operation not permitted"):
        controller.applier  # noqa: B018


# -- the agent process's own failure ------------------------------------------------------


@pytest.fixture
def restore_signals() -> Iterator[None]:
    kinds = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
    saved = {s: signal.getsignal(s) for s in kinds}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def compile_error() -> BaseException:
    from agent.datapath.bpf_loader import CompileError

    return CompileError([Path("bpf/from_pod.c")],
                        "bpf/from_pod.c:12:3: error: use of undeclared identifier 'oops'")


def verifier_rejection() -> BaseException:
    from agent.datapath.bpf_loader import LoadError

    return LoadError("tulle_from_pod", "Permission denied",
                     "0: (61) r2 = *(u32 *)(r1 +76)\nR2 invalid mem access 'scalar'")


@pytest.mark.parametrize(("make", "says"), [
    (compile_error, r"from_pod.c:12: use of undeclared identifier 'oops'"),
    (verifier_rejection, r"(?s)loading BPF program 'tulle_from_pod' failed.*invalid mem access"),
])
def test_a_bad_program_still_fails_the_agent_loudly(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_signals: None,
    make: Any, says: str,
) -> None:
    """The compile runs on the BCC thread now; its error still ends ``run`` (and with it the
    agent process: exit status 1, the traceback on stderr), with nothing left running."""
    error = make()
    traced: list[Any] = []

    def failing_load(pin_dir: Path, state_dir: Path | None, compiling: Any = None,
                     maps_ready: Any = None) -> Any:
        assert threading.current_thread().name == "bcc"
        raise error

    monkeypatch.setattr(bcc_thread, "load_datapath", failing_load)
    monkeypatch.setattr("agent.tracing.start.start_tracing", lambda *a: traced.append(a))
    config = daemon.AgentConfig(
        node="node1", kubeconfig=str(account_kubeconfig(lab, "tulle-agent")),
        health_file=str(tmp_path / "health.json"), pin_dir=str(tmp_path / "pins"),
        observer_port=free_port(), metrics_address=None, trace=True,
    )
    with pytest.raises(type(error), match=says) as raised:
        daemon.run(config)
    assert raised.value is error
    assert traced == []
    wait_for(lambda: not any(t.name in ("sync", "bcc") for t in threading.enumerate()),
             "the agent's threads to end")
    assert not (tmp_path / "health.json").exists()  # never reported, let alone ready
    assert gc.isenabled()  # the startup pause ended with it


def test_the_first_plan_waits_for_the_compiles_when_gated(lab: Lab) -> None:
    """With the gate closed (a restart's tracer compile: agent.bcc_thread.order), the informers
    list beside the compile, but the first sync plans only once it is over (its transient
    memory is not stacked on the plan's peak)."""
    from agent.kube.backoff import Backoff
    from agent.kube.source import connect
    from tests.unit.kube.test_agent_sync import RecordingDatapath

    lab.store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    agent = node_agent.Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
                         backoff=Backoff(0.02, 0.2))
    datapath = RecordingDatapath()
    agent.datapath = datapath  # type: ignore[assignment]
    agent.plan_gate = threading.Event()
    agent.source.start()
    syncer = threading.Thread(target=agent.sync_forever, daemon=True)
    syncer.start()
    try:
        wait_for(lambda: agent.source.synced, "the lists")
        assert not agent.first_synced.wait(0.7) and datapath.calls == []
        agent.plan_gate.set()
        wait_for(lambda: datapath.kinds_of_calls()[:1] == ["resync"], "the first sync")
    finally:
        agent.stop.set()
        agent.source.stop()
        syncer.join(timeout=5)
