"""The agent's first sync beside its BCC compile (agent/bcc_thread.py, agent/daemon.py): the
first sync plans before the maps exist and writes them once they are attached; the tracer
compiles on the same thread, never at once with the datapath: after the first sync when the
datapath compiled, before the first plan when it was adopted; a compile error or a verifier
rejection on that thread still fails the agent, with its own error."""

from __future__ import annotations

import gc
import os
import signal
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from agent import bcc_thread, daemon
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


def test_a_failed_load_ends_the_waiting_sync_with_its_reason(controller: Any) -> None:
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            controller.resync([service("x", "10.96.0.1")])
        except BaseException as err:
            errors.append(err)

    syncing = threading.Thread(target=sync, daemon=True)
    syncing.start()
    controller.attach_failed(RuntimeError("clang: error: boom"))
    syncing.join(5)
    assert not syncing.is_alive() and controller.writes == []
    assert len(errors) == 1 and isinstance(errors[0], DatapathNotLoaded)
    assert "failed to load: clang: error: boom" in str(errors[0])


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
             compiling: Any = None) -> Any:
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

    def failing_load(pin_dir: Path, state_dir: Path | None, compiling: Any = None) -> Any:
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
    agent = daemon.Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
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


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@pytest.mark.skipif(not bcc_thread._may_restore(), reason="needs CAP_SYS_NICE to restore")
def test_the_other_threads_yield_to_the_compile_and_get_their_priority_back() -> None:
    stop, started = threading.Event(), threading.Event()
    tids: dict[str, int] = {}

    def idle() -> None:
        tids[threading.current_thread().name] = threading.get_native_id()
        started.set()
        stop.wait(10)

    def spawn(name: str) -> threading.Thread:
        started.clear()
        thread = threading.Thread(target=idle, name=name, daemon=True)
        thread.start()
        started.wait(5)
        return thread

    threads = [spawn("watch-Service"), spawn("sync")]
    base = _nice(threading.get_native_id())
    favoured: dict[str, Any] = {}

    def compile_thread() -> None:  # the BCC thread: it lowers the others, never itself
        favoured["it"] = bcc_thread.CompileFirst()
        favoured["own"] = _nice(threading.get_native_id())

    try:
        runner = threading.Thread(target=compile_thread)
        runner.start()
        runner.join(5)
        assert favoured["own"] == base
        assert _nice(tids["watch-Service"]) == min(19, base + bcc_thread.YIELD_NICE)
        assert _nice(threading.get_native_id()) == min(19, base + bcc_thread.YIELD_NICE)
        assert _nice(tids["sync"]) == base  # the first plan's thread is spared
        # A thread started meanwhile inherits its creator's lowered priority ...
        threads.append(spawn("observer"))
        assert _nice(tids["observer"]) == min(19, base + bcc_thread.YIELD_NICE)
        favoured["it"].restore()
        # ... and all are back where they were once the load is done.
        assert [_nice(tids[n]) for n in ("watch-Service", "sync", "observer")] == [base] * 3
        assert _nice(threading.get_native_id()) == base
    finally:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), base)
        stop.set()
        for thread in threads:
            thread.join(5)


@pytest.mark.skipif(not bcc_thread._may_restore(), reason="needs CAP_SYS_NICE to restore")
@pytest.mark.parametrize("fails", [False, True])
def test_the_load_lowers_the_others_only_while_it_compiles(
    controller: Any, monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    """The main thread (lists, imports) runs lowered while the datapath compiles, and is
    back at its priority before the maps are attached (and after a failed compile)."""
    main = threading.get_native_id()
    base = _nice(main)
    seen: dict[str, int] = {}

    def load(_pin: Path, _state: Path | None, compiling: Any = None) -> Any:
        seen["before the compile"] = _nice(main)
        compiling()
        seen["compiling"] = _nice(main)
        if fails:
            raise OSError(1, "Operation not permitted")
        return NoMaps()

    attach = controller.attach
    monkeypatch.setattr(controller, "attach",
                        lambda dp: (seen.setdefault("at the attach", _nice(main)), attach(dp)))
    monkeypatch.setattr(bcc_thread, "load_datapath", load)
    try:
        load_ = start(Steps(controller), controller, threading.Event())
        if fails:
            with pytest.raises(OSError):
                load_.wait()
        else:
            load_.wait()
        lowered = min(19, base + bcc_thread.YIELD_NICE)
        assert seen["before the compile"] == base and seen["compiling"] == lowered
        assert seen.get("at the attach", base) == base and _nice(main) == base
        assert ("at the attach" in seen) is not fails
    finally:
        os.setpriority(os.PRIO_PROCESS, main, base)


def test_without_the_right_to_undo_it_no_priority_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bcc_thread, "_may_restore", lambda: False)
    me = threading.get_native_id()
    before = _nice(me)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.setdefault("it", bcc_thread.CompileFirst()))
    runner.start()
    runner.join(5)
    assert result["it"].lowered == {} and _nice(me) == before
