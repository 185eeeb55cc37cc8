"""The node's datapath programs: compile once, pin every map under the node's pin dir.

Loading again with the same pin dir adopts the pinned maps (conntrack, services, policy),
which is what lets a restarted agent replace programs without resetting connections.

With a state dir, a start whose inputs are those of the last compile skips BCC altogether:
it adopts the pinned programs and maps (``templates``) and serves the maps as
``kerneltable.KernelTable``. This module therefore imports BCC only when it compiles.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.datapath import templates
from agent.datapath.bpfinfo import BPF_PROG_TYPE_SCHED_CLS
from agent.datapath.cdefs import BPF_DIR

log = logging.getLogger("tulle.datapath")
# The pod veths' programs and the uplink's (NodePort/LoadBalancer from outside, nodeport.h):
# one compile, one set of pinned maps.
PROGRAM_SOURCES = (BPF_DIR / "from_pod.c", BPF_DIR / "to_pod.c",
                   BPF_DIR / "from_netdev.c", BPF_DIR / "to_netdev.c")
FROM_POD = "tulle_from_pod"
TO_POD = "tulle_to_pod"
FROM_NETDEV = "tulle_from_netdev"
TO_NETDEV = "tulle_to_netdev"
PROGRAMS = [templates.Program(name, BPF_PROG_TYPE_SCHED_CLS)
            for name in (FROM_POD, TO_POD, FROM_NETDEV, TO_NETDEV)]


@dataclass
class Datapath:
    pin_dir: Path
    from_pod_fd: int
    to_pod_fd: int
    bpf: Any = None  # the BCC module, kept only when the compile could not be recorded
    adopted: templates.Adopted | None = None
    compiled: bool = False  # this load compiled (and, when recorded, then adopted) the programs
    from_netdev_fd: int = -1  # the uplink's; -1 when the sources left them out
    to_netdev_fd: int = -1

    @property
    def programs_loaded(self) -> bool:
        """False for a compile's maps handed over before its programs load (``maps_ready``)."""
        return self.from_pod_fd >= 0 and self.to_pod_fd >= 0

    def table(self, name: str) -> Any:
        """The map ``name`` as BCC's table API (a BCC table, or a ``KernelTable``)."""
        if self.adopted is not None:
            return self.adopted.tables[name]
        return self.bpf[name.encode()]

    def event(self, data: Any) -> Any:
        """A ring-buffer record as `struct flow_event` (BCC's ctypes for it), copied out."""
        leaf = self.table("flow_event_layout").Leaf
        return leaf.from_buffer_copy(ctypes.string_at(data, ctypes.sizeof(leaf)))

    def events_lost(self) -> int:
        """Flow events the kernel could not queue (ring full), ever: the per-CPU sum of the
        pinned ``events_lost_v1``."""
        table = self.table("events_lost_v1")
        return int(sum(table.getvalue(table.Key(0))))

    def close(self) -> None:
        """Release our handles; attached programs and pinned maps live on in the kernel."""
        if self.adopted is not None:
            self.adopted.close()
        if self.bpf is not None:
            self.bpf.cleanup()


def load_datapath(
    pin_dir: Path,
    *,
    state_dir: Path | None = None,
    debug_dump_path: Path | None = None,
    sources: Sequence[Path] = PROGRAM_SOURCES,
    cflags: Sequence[str] = (),
    compiling: Callable[[], None] | None = None,
    maps_ready: Callable[[Datapath], None] | None = None,
) -> Datapath:
    """Load the node's programs, adopting the pinned maps under ``pin_dir``.

    With ``state_dir``, first try to adopt the programs pinned by an earlier compile of the
    same inputs (no BCC, no compile); any difference is logged in one line and we compile,
    then pin the programs and record them for the next start. ``debug_dump_path`` (the C
    that clang compiled) always compiles. ``compiling`` is called once the compile is certain,
    before it starts (the agent plans beside it: agent.bcc_thread). ``maps_ready`` receives
    a compile's maps as soon as they exist, before the verifier loads the programs (a
    ``Datapath`` without programs, its own fds: the agent writes its first sync meanwhile);
    the caller closes it once it has the returned one."""
    pin_dir.mkdir(parents=True, exist_ok=True)
    flags = [f'-DTULLE_PIN_DIR="{pin_dir}"', *cflags]
    source_list = list(sources)
    programs = PROGRAMS if BPF_DIR / "from_netdev.c" in source_list else PROGRAMS[:2]
    # What determines the object (hashes the expanded C): once, for adopting and recording.
    ins: dict[str, Any] | None = None
    record = state_dir / templates.RECORD_NAME if state_dir is not None else None
    if state_dir is not None and record is not None and record.exists():
        ins = templates.inputs(source_list, flags, programs)
        if debug_dump_path is None:
            try:
                adopted = templates.adopt(pin_dir, state_dir, ins, programs)
            except templates.Mismatch as why:
                log.info("datapath: compiling, not adopting the pinned programs: %s", why)
            else:
                log.info("datapath: adopted the programs pinned in %s (same inputs; no "
                         "compile)", pin_dir)
                return _adopted(pin_dir, adopted)
    elif record is not None:
        log.info("datapath: compiling, not adopting the pinned programs: no compile record at "
                 "%s", record)
    if compiling is not None:
        compiling()
    # No record (a fresh node): the compile is certain, and the inputs are hashed for the
    # record beside it (BCC compiles without the GIL), not before it, where the informers'
    # decoding holds the GIL and stretched ~0.01 s of CPU to ~0.1 s.
    hashing = (_Beside(lambda: templates.inputs(source_list, flags, programs))
               if state_dir is not None and ins is None else None)
    dp = _compile(pin_dir, source_list, flags, debug_dump_path, maps_ready)
    if hashing is not None:
        ins = hashing.result()
    if state_dir is not None and ins is not None and _remember(dp, state_dir, ins):
        return _adopt_compiled(dp, state_dir, ins, programs)
    return dp


class _Beside:
    """``fn`` run on a thread of its own; ``result`` waits for it (and raises its error)."""

    def __init__(self, fn: Callable[[], dict[str, Any]]) -> None:
        self._fn = fn
        self._out: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bcc-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._out = self._fn()
        except BaseException as err:  # handed to result()'s caller
            self._error = err

    def result(self) -> dict[str, Any]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._out is not None
        return self._out


def _adopt_compiled(dp: Datapath, state_dir: Path, ins: dict[str, Any],
                    programs: list[templates.Program]) -> Datapath:
    """Adopt what this compile just pinned and recorded, then drop the BCC module: a
    compiled start then serves its maps as a restart does (one code path), and BCC's
    module (its tables, its copy of the object: ~6 MB) leaves before the tracer compiles."""
    try:
        adopted = templates.adopt(dp.pin_dir, state_dir, ins, programs)
    except templates.Mismatch as why:
        log.warning("datapath: serving the compiled module; adopting its pins failed: %s", why)
        return dp
    dp.bpf.cleanup()  # the pins and the adopted fds keep programs and maps alive
    return _adopted(dp.pin_dir, adopted, compiled=True)


def _adopted(pin_dir: Path, adopted: templates.Adopted, compiled: bool = False) -> Datapath:
    fds = adopted.prog_fds
    return Datapath(pin_dir, fds[FROM_POD], fds[TO_POD], adopted=adopted, compiled=compiled,
                    from_netdev_fd=fds.get(FROM_NETDEV, -1), to_netdev_fd=fds.get(TO_NETDEV, -1))


def _compile(pin_dir: Path, sources: list[Path], flags: list[str],
             debug_dump_path: Path | None,
             maps_ready: Callable[[Datapath], None] | None = None) -> Datapath:
    from agent.datapath.bpf_loader import BPF, load_fn, load_program  # BCC: compile path only

    bpf = load_program(sources, flags, debug_dump_path=debug_dump_path)
    if maps_ready is not None:
        _hand_maps(pin_dir, bpf, maps_ready)
    uplink = BPF_DIR / "from_netdev.c" in sources  # tests may compile the pod programs alone
    return Datapath(
        pin_dir=pin_dir,
        from_pod_fd=load_fn(bpf, FROM_POD, BPF.SCHED_CLS).fd,
        to_pod_fd=load_fn(bpf, TO_POD, BPF.SCHED_CLS).fd,
        bpf=bpf,
        compiled=True,
        from_netdev_fd=load_fn(bpf, FROM_NETDEV, BPF.SCHED_CLS).fd if uplink else -1,
        to_netdev_fd=load_fn(bpf, TO_NETDEV, BPF.SCHED_CLS).fd if uplink else -1,
    )


def _hand_maps(pin_dir: Path, bpf: Any, maps_ready: Callable[[Datapath], None]) -> None:
    """The compiled module's maps exist (BCC creates and pins them before any program
    loads): hand them over now, on fds of their own, and let the verifier run beside the
    writes. Should that fail, the writes wait for the whole load, as without it."""
    from agent.datapath.bpf_loader import table_descriptions

    try:
        opened = templates.open_compiled_maps(table_descriptions(bpf))
    except (OSError, ValueError, TypeError) as err:
        log.warning("datapath: the maps wait for the programs' load: %s", err)
        return
    maps_ready(Datapath(pin_dir, -1, -1, adopted=opened, compiled=True))


def _remember(dp: Datapath, state_dir: Path, ins: dict[str, Any]) -> bool:
    """Pin the programs and record them; a failure (False) costs only the next start's
    compile."""
    from agent.datapath.bpf_loader import table_descriptions

    prog_fds = {FROM_POD: dp.from_pod_fd, TO_POD: dp.to_pod_fd}
    if dp.from_netdev_fd >= 0:
        prog_fds.update({FROM_NETDEV: dp.from_netdev_fd, TO_NETDEV: dp.to_netdev_fd})
    try:
        record = templates.build_record(ins, prog_fds,
                                        table_descriptions(dp.bpf), dp.pin_dir)
        templates.remember(state_dir, dp.pin_dir, record, prog_fds)
    except (OSError, ValueError) as err:
        log.warning("datapath: compiled programs not recorded for the next start: %s", err)
        return False
    return True

