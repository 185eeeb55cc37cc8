"""The kernel's view of loaded BPF programs, for the benchmarks that attribute cost to them
(bench/tracecost.py, ``bench.trace --attribute``): run-time stats switched on for a scope,
each program's name and size, and the stats of every program a set of processes holds.

Stats go on through ``BPF_ENABLE_STATS`` rather than by writing the
``kernel.bpf_stats_enabled`` sysctl: the kernel counts the fd as one user of the stats and
drops it when the fd closes, however this process ends (even SIGKILL), so the sysctl goes
back to what it was (off, unless someone else holds stats on) and is never left on. The
sysctl reads its own setting only: 0 before, during and after such a run.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.tracecost_stats import ProgInfo, ProgStats, parse_fdinfo

# enum bpf_prog_type
PROG_TYPES = {3: "sched_cls", 5: "tracepoint", 13: "sock_ops", 17: "raw_tracepoint"}
TRACER_PROG_TYPES = {5: "tracepoint", 17: "raw_tracepoint", 13: "sock_ops"}
BPF_STATS_RUN_TIME = 0
STATS_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


class _ProgInfoHead(ctypes.Structure):
    """The leading fields of uapi ``struct bpf_prog_info``, up to its name (the kernel fills
    as much as we ask; the pointer fields stay 0, so it copies no instructions)."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("tag", ctypes.c_uint8 * 8), ("jited_prog_len", ctypes.c_uint32),
                ("xlated_prog_len", ctypes.c_uint32), ("jited_prog_insns", ctypes.c_uint64),
                ("xlated_prog_insns", ctypes.c_uint64), ("load_time", ctypes.c_uint64),
                ("created_by_uid", ctypes.c_uint32), ("nr_map_ids", ctypes.c_uint32),
                ("map_ids", ctypes.c_uint64), ("name", ctypes.c_char * 16)]


def _libbpf() -> ctypes.CDLL:
    from agent.datapath.native import libbpf

    libbpf.bpf_enable_stats.argtypes = [ctypes.c_int]
    libbpf.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
    libbpf.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                              ctypes.POINTER(ctypes.c_uint32)]
    return libbpf


@contextmanager
def bpf_stats() -> Iterator[None]:
    """Kernel BPF run-time stats on while inside (the sysctl's value is restored by the kernel
    when the fd closes, however this process ends)."""
    from agent.datapath.native import check

    fd = check(_libbpf().bpf_enable_stats(BPF_STATS_RUN_TIME), "bpf_enable_stats")
    try:
        yield
    finally:
        os.close(fd)


def stats_sysctl() -> str:
    """``kernel.bpf_stats_enabled`` as the kernel reports it now ("?" if unreadable)."""
    try:
        return STATS_SYSCTL.read_text().strip()
    except OSError:
        return "?"


def prog_info(prog_id: int) -> ProgInfo:
    from agent.datapath.native import check

    lib = _libbpf()
    fd = check(lib.bpf_prog_get_fd_by_id(prog_id), f"bpf_prog_get_fd_by_id({prog_id})")
    try:
        info = _ProgInfoHead()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        check(lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
              f"bpf_obj_get_info_by_fd(prog {prog_id})")
        return ProgInfo(str(info.name.decode(errors="replace")), info.xlated_prog_len // 8)
    finally:
        os.close(fd)


def held_programs(pids: list[int],
                  types: dict[int, str] | None = None) -> dict[int, ProgStats]:
    """prog id -> stats of every program the processes hold an fd of (of `types` only, if
    given)."""
    found: dict[int, ProgStats] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) != "anon_inode:bpf-prog":
                    continue
                stats = parse_fdinfo(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text())
            except OSError:
                continue  # closed meanwhile
            if stats is not None and (types is None or stats.prog_type in types):
                found[stats.prog_id] = stats
    return found


def tracer_programs(pids: list[int]) -> dict[int, ProgStats]:
    """prog id -> stats of every tracer program (tracepoints, sock_ops) the processes hold an
    fd of."""
    return held_programs(pids, TRACER_PROG_TYPES)
