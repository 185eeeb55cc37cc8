"""The agent's BCC thread: the datapath's compile (or adoption) and load, and the tracer's.

BCC compiles in C without the GIL, so the thread runs beside the informers' lists
(agent/daemon.py `run`); the first sync plans once ``plan_gate`` opens and writes once the
controller has the maps (DatapathController.attach). The two compiles run one after the other
on this one thread: each borrows fd 2 process-wide (agent.datapath.bpf_loader), two at once
would take both cores from the sync, and BCC crashed when two threads of one process compiled
at once (bench.control.compileprof's parallel-split: a segfault).

The order depends on whether this start compiles its datapath (``order``), measured at 10,000
Services in bench/results/fresh-compile-2026-12-05.md:
- it compiles (a fresh node, or new inputs): the first plan runs beside the datapath's compile
  and the tracer compiles after the first sync, so the sync waits for neither the tracer nor
  the compile's end (only its writes wait for the maps; the post-compile trim runs beside
  them, after the attach). BCC's libraries are resident by then, so the tracer adds only its
  compile's transient (~38 MB) to the synced state;
- it adopted the pinned programs (a restart; no BCC imported yet): the tracer goes first and
  the plan waits for it. Usually the tracer is adopted too (agent/tracing/cache.py: ~0.1 s
  CPU, ready before the lists end); when it must compile, BCC's libraries plus the compile
  after the sync peaked at 304 MB against 261 MB before it
  (bench/results/control-2026-12-05-session6.md).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.datapath.native import drop_file_pages, malloc_trim
from agent.procfs import seconds_since, start_ticks

if TYPE_CHECKING:
    from agent.datapath.controller import DatapathController
    from agent.datapath.programs import Datapath
    from agent.flows.ingest import FlowIngest

log = logging.getLogger("tulle.agent")


@dataclass(frozen=True)
class Order:
    plan_beside_compile: bool  # the first plan may run while the datapath compiles
    tracer_after_sync: bool  # the tracer's compile waits for the first sync (else: before it)


# A start that compiles its datapath, and one that adopted it (see the module docstring).
COMPILING = Order(plan_beside_compile=True, tracer_after_sync=True)
ADOPTED = Order(plan_beside_compile=False, tracer_after_sync=False)


def order(compiles: bool) -> Order:
    return COMPILING if compiles else ADOPTED


class TracedAgent(Protocol):
    node: str
    datapath: DatapathController | None
    stop: threading.Event
    tracing: Any


def process_age() -> float:
    """Seconds since this process started (by /proc, so imports and BPF loading count too)."""
    return seconds_since(start_ticks() or 0)


def load_datapath(pin_dir: Path, state_dir: Path | None,
                  compiling: Callable[[], None] | None = None,
                  maps_ready: Callable[[Datapath], None] | None = None) -> Datapath:
    """``programs.load_datapath``, imported here: BCC (libbcc), when a compile needs it, is
    imported on this thread, not on the agent's import path. ``compiling`` is called when
    the adoption failed and the compile starts; ``maps_ready`` with the compile's maps,
    before the verifier loads its programs."""
    from agent.datapath.programs import load_datapath as load

    return load(pin_dir, state_dir=state_dir, compiling=compiling, maps_ready=maps_ready)


def tracer_step(agent: TracedAgent, ingest: FlowIngest, pin_dir: Path | None = None,
                state_dir: Path | None = None,
                pod_cgroup: Path | None = None) -> Callable[[], None]:
    """The tracer's compile (or adoption: both dirs) and start (best effort), as a step of
    the BCC thread. The pause/resume signal handlers are installed here, on the main thread."""
    from agent.tracing.start import TraceSwitch, start_tracing

    switch = TraceSwitch().install()

    def step() -> None:
        assert agent.datapath is not None
        agent.tracing = start_tracing(agent.datapath, ingest, agent.node, agent.stop, switch,
                                      pin_dir, state_dir, pod_cgroup)
        after_compile()

    return step


def after_compile() -> None:
    """Give back what a BCC compile leaves in our RSS: the C heap's freed LLVM memory and the
    compiler libraries' file pages (a later compile faults back the pages it uses). A start
    that adopted everything imported no BCC: nothing to give back, no work on its sync."""
    if "bcc" not in sys.modules:
        return
    malloc_trim()
    drop_file_pages()


class DatapathLoad:
    """The agent's BCC thread: the datapath's compile (or adoption) and load, handed to the
    controller, and the tracer's compile before the first plan or after the first sync
    (``order``). ``wait`` returns when the datapath was loaded (seconds since the process
    started) or raises the load's error; ``plan_gate`` opens when the first sync may plan.

    The thread may start before the controller exists (``controller`` None, then ``bind``):
    the daemon starts the compile right after the lists, and imports and builds the rest of
    the agent (~0.3 s at a fresh node's start) meanwhile; the load waits for the binding
    only to hand over what it loaded."""

    def __init__(
        self,
        pin_dir: Path,
        controller: DatapathController | None,
        tracer: Callable[[], None] | None,
        first_synced: threading.Event,
        stop: threading.Event,
        state_dir: Path | None = None,
    ) -> None:
        self.pin_dir = pin_dir
        self.state_dir = state_dir  # the compile cache's record (None: always compile)
        self.controller = controller
        self.tracer = tracer
        self.bound = threading.Event()  # controller and tracer are known
        if controller is not None:
            self.bound.set()
        self.first_synced = first_synced
        self.stop = stop
        self.done = threading.Event()
        self.gate = threading.Event()  # the first sync may plan
        self.compiled_datapath = False  # this start compiled its datapath (BCC is resident)
        self.loaded_s: float | None = None
        self.error: BaseException | None = None

    def start(self) -> DatapathLoad:
        threading.Thread(target=self._run, name="bcc", daemon=True).start()
        return self

    def bind(self, controller: DatapathController, tracer: Callable[[], None] | None) -> None:
        """Who receives the load (a thread started without them)."""
        self.controller, self.tracer = controller, tracer
        self.bound.set()

    def _binding(self) -> DatapathController | None:
        """The controller, once bound; None if the agent stops first (a failed start)."""
        while not self.bound.wait(0.1):
            if self.stop.is_set():
                return None
        return self.controller

    def wait(self) -> float:
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.loaded_s is not None
        return self.loaded_s

    def _run(self) -> None:
        try:
            self._steps()
        finally:
            self.gate.set()
            self.done.set()

    def _steps(self) -> None:
        try:
            self._load()
        except BaseException as err:
            self.error = err
            if (controller := self._binding()) is not None:
                controller.attach_failed(err)
            return
        finally:
            self.done.set()
        if self.tracer is None:
            return
        if order(self.compiled_datapath).tracer_after_sync:
            self.gate.set()
            while not self.first_synced.wait(0.5):
                if self.stop.is_set():
                    return
            # The tracer's compile transient (~40 MB) on the synced state is a compiling
            # start's peak: free first what the sync left (cycles made since its gc.freeze;
            # the C heap's free pages). Not before a first plan: that walk would delay it.
            gc.collect()
            malloc_trim()
        self.tracer()

    def plan_gate(self) -> threading.Event:
        """What the first sync waits for before it plans (``order``)."""
        return self.gate

    def _compiling(self) -> None:
        """The compile cache could not adopt: this start compiles its datapath."""
        self.compiled_datapath = True
        if order(True).plan_beside_compile:
            self.gate.set()

    def _maps_ready(self, maps_only: Datapath) -> None:
        """A compile's maps: the first sync writes them while the verifier runs (~0.25 s
        at 10,000 Services, as long as the writes)."""
        controller = self._binding()
        if controller is None:
            maps_only.close()
            return
        controller.attach_maps(maps_only)

    def _load(self) -> None:
        started = time.monotonic()
        dp = load_datapath(self.pin_dir, self.state_dir, self._compiling, self._maps_ready)
        controller = self._binding()
        if controller is None:
            raise RuntimeError("the agent stopped before its datapath was handed over")
        controller.attach(dp)
        self.loaded_s = process_age()
        # After the attach: the first sync writes its maps meanwhile (reading smaps here
        # beside its plan took 0.13 s for 0.02 s CPU, waiting for the GIL); before the
        # tracer's compile, which must not stack on the compiler's pages and freed heap.
        after_compile()
        how = "compiled" if self.compiled_datapath else "adopted"
        log.info("datapath %s and loaded in %.1f s", how, time.monotonic() - started)
