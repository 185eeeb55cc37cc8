"""The agent's BCC thread: the datapath's compile and load, then (or before) the tracer's.

BCC compiles in C without the GIL, so the thread runs beside the informers' lists
(agent/daemon.py `run`); the first sync plans once the compiles are over (PLAN_BESIDE_COMPILES)
and writes once the controller has the maps (DatapathController.attach). The
two compiles run one after the other on this one thread: each borrows fd 2 process-wide
(agent.datapath.bpf_loader), and two at once would take both cores from the sync.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.datapath.controller import DatapathController
from agent.datapath.native import malloc_trim
from agent.flows.ingest import FlowIngest
from agent.procfs import seconds_since, start_ticks

if TYPE_CHECKING:
    from agent.datapath.programs import Datapath

log = logging.getLogger("tulle.agent")
# When the tracer compiles on the BCC thread: "after-load" (right after the datapath's
# compile or adoption, before the first sync's planning), "before-load" or "after-sync". Measured in
# bench/results/control-2026-12-05-overlap.md.
TRACE_ORDER = "after-load"
# Whether the first sync plans beside the compiles (True) or after them (False): the plan
# is the sync's memory peak, and a compile's ~30-50 MB LLVM transient on top of it took
# the agent past 300 MB at 10,000 Services; the lists (the sync's other half) overlap the
# compiles either way. Measured in bench/results/control-2026-12-05-overlap.md.
PLAN_BESIDE_COMPILES = False


class TracedAgent(Protocol):
    node: str
    datapath: DatapathController | None
    stop: threading.Event
    tracing: Any


def process_age() -> float:
    """Seconds since this process started (by /proc, so imports and BPF loading count too)."""
    return seconds_since(start_ticks() or 0)


def load_datapath(pin_dir: Path, state_dir: Path | None) -> Datapath:
    """``programs.load_datapath``, imported here: BCC (libbcc), when a compile needs it, is
    imported on this thread, not on the agent's import path."""
    from agent.datapath.programs import load_datapath as load

    return load(pin_dir, state_dir=state_dir)


def tracer_step(agent: TracedAgent, ingest: FlowIngest, pin_dir: Path | None = None,
                state_dir: Path | None = None) -> Callable[[], None]:
    """The tracer's compile (or adoption: both dirs) and start (best effort), as a step of
    the BCC thread. The pause/resume signal handlers are installed here, on the main thread."""
    from agent.tracing.start import TraceSwitch, start_tracing

    switch = TraceSwitch().install()

    def step() -> None:
        assert agent.datapath is not None
        agent.tracing = start_tracing(agent.datapath, ingest, agent.node, agent.stop, switch,
                                      pin_dir, state_dir)
        malloc_trim()  # its compile's freed LLVM memory

    return step


class DatapathLoad:
    """The agent's BCC thread: the datapath's compile and load, handed to the controller,
    and the tracer's compile before or after it (TRACE_ORDER). ``wait`` returns when the
    datapath was loaded (seconds since the process started) or raises the load's error."""

    def __init__(
        self,
        pin_dir: Path,
        controller: DatapathController,
        tracer: Callable[[], None] | None,
        first_synced: threading.Event,
        stop: threading.Event,
        state_dir: Path | None = None,
    ) -> None:
        self.pin_dir = pin_dir
        self.state_dir = state_dir  # the compile cache's record (None: always compile)
        self.controller = controller
        self.tracer = tracer
        self.first_synced = first_synced
        self.stop = stop
        self.done = threading.Event()
        self.compiled = threading.Event()  # the compiles before the first sync are over
        self.loaded_s: float | None = None
        self.error: BaseException | None = None

    def start(self) -> DatapathLoad:
        threading.Thread(target=self._run, name="bcc", daemon=True).start()
        return self

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
            self.compiled.set()
            self.done.set()

    def _steps(self) -> None:
        order = TRACE_ORDER
        if self.tracer is not None and order == "before-load":
            self.tracer()
        try:
            self._load()
        except BaseException as err:
            self.error = err
            self.controller.attach_failed(err)
            return
        finally:
            self.done.set()
        if self.tracer is None or order == "before-load":
            return
        # Also after an adoption (the compile cache: no datapath compile), the tracer's
        # compile goes before the first plan. Measured at 10,000 Services: after the first
        # sync instead, the restart synced at 2.41 s instead of ~3.0 s but peaked at 304 MB
        # (BCC's ~80 MB of library pages and ~50 MB of compile on the synced state) against
        # 261 MB; the memory budget (300 MB) wins, since the datapath forwards meanwhile.
        if order == "after-sync":
            self.compiled.set()
            while not self.first_synced.wait(0.5):
                if self.stop.is_set():
                    return
        self.tracer()

    def plan_gate(self) -> threading.Event | None:
        """What the first sync waits for before it plans (PLAN_BESIDE_COMPILES)."""
        return None if PLAN_BESIDE_COMPILES else self.compiled

    def _load(self) -> None:
        started = time.monotonic()
        dp = load_datapath(self.pin_dir, self.state_dir)
        malloc_trim()  # the compile's freed LLVM memory: not under the first sync's peak
        self.controller.attach(dp)
        self.loaded_s = process_age()
        log.info("datapath compiled and loaded in %.1f s", time.monotonic() - started)
