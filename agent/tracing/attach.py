"""Attach tracing programs to their tracepoints by fd, without BCC.

A tracer adopted from its pins (``agent.tracing.cache``) has program fds but no BCC module,
so it attaches the way BCC's libbcc does underneath:

- a classic tracepoint: ``perf_event_open`` of ``PERF_TYPE_TRACEPOINT`` with the event's id
  (tracefs ``events/<category>/<name>/id``), ``PERF_EVENT_IOC_SET_BPF`` with the program, then
  ``PERF_EVENT_IOC_ENABLE``. One event on CPU 0 suffices: the program hangs off the
  tracepoint itself and runs on every CPU;
- a raw tracepoint: libbpf's ``bpf_raw_tracepoint_open``.

Either way the attachment is one fd: closing it detaches (the pause switch, and the agent's
exit: pinned programs stay loaded but run no more).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
from collections.abc import Iterable
from pathlib import Path

from agent.datapath.native import check, libbpf, os_error

PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                    "s390x": 331}

libbpf.bpf_raw_tracepoint_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
libbpf.bpf_raw_tracepoint_open.restype = ctypes.c_int
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class PerfEventAttr(ctypes.Structure):
    """uapi ``struct perf_event_attr`` up to PERF_ATTR_SIZE_VER0 (64 bytes): all a
    tracepoint event needs; the kernel takes the size from ``size``."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),  # disabled, inherit, ... bit fields: all off
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
    ]


def tracepoint_attr(event_id: int) -> PerfEventAttr:
    """The attributes libbcc uses for a tracepoint event carrying a BPF program. Pure."""
    return PerfEventAttr(type=PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(PerfEventAttr),
                         config=event_id, sample_period=1, sample_type=PERF_SAMPLE_RAW,
                         wakeup_events=1)


def split_hook(hook: str) -> tuple[str, str, str]:
    """("tracepoint", category, event) or ("raw_tracepoint", "", event) from a plan's hook
    name (``tracepoint:sock:inet_sock_set_state``, ``raw_tracepoint:tcp_probe``). Pure."""
    kind, _, rest = hook.partition(":")
    if kind == "tracepoint":
        category, _, event = rest.partition(":")
        if category and event and ":" not in event:
            return kind, category, event
    elif kind == "raw_tracepoint" and rest and ":" not in rest:
        return kind, "", rest
    raise ValueError(f"not a tracepoint hook: {hook!r}")


def program_name(hook: str) -> str:
    """The C function BCC's TRACEPOINT_PROBE / RAW_TRACEPOINT_PROBE defines for ``hook``
    (the program's name, and its pin's). Pure."""
    kind, category, event = split_hook(hook)
    if kind == "tracepoint":
        return f"tracepoint__{category}__{event}"
    return f"raw_tracepoint__{event}"


def parse_event_id(text: str, where: str) -> int:
    """A tracefs ``id`` file's number; ValueError naming ``where`` otherwise. Pure."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{where}: not a tracepoint id: {text.strip()[:40]!r}") from None
    if value <= 0:
        raise ValueError(f"{where}: not a tracepoint id: {value}")
    return value


def event_id(category: str, event: str, roots: Iterable[Path] | None = None) -> int:
    """The perf event id of tracepoint ``category:event`` (tracefs, or debugfs's copy)."""
    from agent.tracing.reasons import TRACEFS_ROOTS

    tried = []
    for root in roots if roots is not None else TRACEFS_ROOTS:
        path = root / "events" / category / event / "id"
        try:
            return parse_event_id(path.read_text(), str(path))
        except FileNotFoundError:
            tried.append(str(path))
    raise FileNotFoundError(f"tracepoint {category}:{event} not found (tried "
                            f"{', '.join(tried)}); is tracefs mounted?")


def attach_tracepoint(prog_fd: int, category: str, event: str) -> int:
    """Run ``prog_fd`` on tracepoint ``category:event``; the returned fd holds it there."""
    machine = platform.machine()
    if machine not in _PERF_EVENT_OPEN:
        raise OSError(errno.ENOSYS, f"perf_event_open: syscall number unknown on {machine}")
    attr = tracepoint_attr(event_id(category, event))
    fd = int(_libc.syscall(_PERF_EVENT_OPEN[machine], ctypes.byref(attr), -1, 0, -1,
                           PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise os_error(ctypes.get_errno(), f"perf_event_open(tracepoint {category}:{event})")
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
        fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError as err:
        os.close(fd)
        raise OSError(err.errno, f"attaching program fd {prog_fd} to tracepoint "
                                 f"{category}:{event}: {err.strerror}") from None
    return fd


def attach_raw_tracepoint(prog_fd: int, event: str) -> int:
    """Run ``prog_fd`` on raw tracepoint ``event``; the returned fd holds it there."""
    return check(libbpf.bpf_raw_tracepoint_open(event.encode(), prog_fd),
                 f"bpf_raw_tracepoint_open({event!r}, program fd {prog_fd})")


def attach(hook: str, prog_fd: int) -> int:
    """Attach ``prog_fd`` to a plan's ``hook``; close the returned fd to detach."""
    kind, category, event = split_hook(hook)
    if kind == "tracepoint":
        return attach_tracepoint(prog_fd, category, event)
    return attach_raw_tracepoint(prog_fd, event)


class Hooks:
    """A plan's hooks and their programs: attached (one fd each) or not."""

    def __init__(self, prog_fds: dict[str, int]) -> None:
        self.prog_fds = dict(prog_fds)  # hook -> program fd (not ours to close)
        self.links: dict[str, int] = {}  # hook -> attachment fd (ours)

    def set(self, on: bool) -> None:
        """Attach every hook (idempotent) or detach every one. An attach that fails detaches
        what this call attached and raises, naming the hook."""
        if not on:
            self.close()
            return
        added = []
        try:
            for hook, prog_fd in self.prog_fds.items():
                if hook not in self.links:
                    self.links[hook] = attach(hook, prog_fd)
                    added.append(hook)
        except (OSError, ValueError):
            for hook in added:
                os.close(self.links.pop(hook))
            raise

    @property
    def attached(self) -> tuple[str, ...]:
        return tuple(self.links)

    def close(self) -> None:
        while self.links:
            _, fd = self.links.popitem()
            os.close(fd)
