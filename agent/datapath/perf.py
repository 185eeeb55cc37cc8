"""perf events carrying BPF programs, opened without BCC: what libbcc's ``bpf_attach_tracepoint``
and ``bpf_attach_kprobe`` do underneath, through ``perf_event_open(2)`` and two ioctls.

- a tracepoint: ``PERF_TYPE_TRACEPOINT`` with the event's id (tracefs
  ``events/<category>/<name>/id``);
- a kprobe: the ``kprobe`` PMU (``/sys/bus/event_source/devices/kprobe/type``), the function
  named by ``config1`` (no tracefs ``kprobe_events`` entry to clean up).

Then ``PERF_EVENT_IOC_SET_BPF`` and ``PERF_EVENT_IOC_ENABLE``. One event on CPU 0 suffices: the
program hangs off the tracepoint or probe itself and runs on every CPU. Closing the returned fd
detaches it. Used by the feature probe and by a tracer adopted from its pins
(``agent.tracing.attach``), neither of which may load libbcc.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
from collections.abc import Iterable
from pathlib import Path

from agent.datapath.native import libc, os_error
from agent.tracing.reasons import TRACEFS_ROOTS

PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_RAW = 1 << 10
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400  # _IO('$', 0)
PERF_EVENT_IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)
KPROBE_PMU_TYPE = Path("/sys/bus/event_source/devices/kprobe/type")
_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "riscv64": 241, "ppc64le": 319,
                    "s390x": 331}

libc.syscall.restype = ctypes.c_long


class PerfEventAttr(ctypes.Structure):
    """uapi ``struct perf_event_attr`` up to PERF_ATTR_SIZE_VER1 (72 bytes): all a tracepoint
    or kprobe event needs; the kernel takes the size from ``size``."""

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
        ("config1", ctypes.c_uint64),  # a kprobe's function name (a pointer)
        ("config2", ctypes.c_uint64),  # a kprobe's offset in it
    ]


def event_attr(pmu_type: int, config: int = 0, config1: int = 0) -> PerfEventAttr:
    """The attributes libbcc uses for an event carrying a BPF program. Pure."""
    return PerfEventAttr(type=pmu_type, size=ctypes.sizeof(PerfEventAttr), config=config,
                         sample_period=1, sample_type=PERF_SAMPLE_RAW, wakeup_events=1,
                         config1=config1)


def parse_number(text: str, where: str) -> int:
    """A tracefs or sysfs number file's positive value; ValueError naming ``where``. Pure."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{where}: not a number: {text.strip()[:40]!r}") from None
    if value <= 0:
        raise ValueError(f"{where}: not a positive number: {value}")
    return value


def tracepoint_id(category: str, event: str, roots: Iterable[Path] = TRACEFS_ROOTS) -> int:
    """The perf event id of tracepoint ``category:event`` (tracefs, or debugfs's copy)."""
    tried = []
    for root in roots:
        path = root / "events" / category / event / "id"
        try:
            return parse_number(path.read_text(), str(path))
        except FileNotFoundError:
            tried.append(str(path))
    raise FileNotFoundError(errno.ENOENT, f"tracepoint {category}:{event} not found (tried "
                            f"{', '.join(tried)}); is tracefs mounted?")


def _open_with_program(attr: PerfEventAttr, prog_fd: int, what: str) -> int:
    machine = platform.machine()
    if machine not in _PERF_EVENT_OPEN:
        raise OSError(errno.ENOSYS, f"perf_event_open: syscall number unknown on {machine}")
    fd = int(libc.syscall(_PERF_EVENT_OPEN[machine], ctypes.byref(attr), -1, 0, -1,
                           PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise os_error(ctypes.get_errno(), f"perf_event_open({what})")
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
        fcntl.ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError as err:
        os.close(fd)
        raise OSError(err.errno, f"attaching program fd {prog_fd} to {what}: "
                                 f"{err.strerror}") from None
    return fd


def attach_tracepoint(prog_fd: int, category: str, event: str) -> int:
    """Run ``prog_fd`` on tracepoint ``category:event``; the returned fd holds it there."""
    attr = event_attr(PERF_TYPE_TRACEPOINT, tracepoint_id(category, event))
    return _open_with_program(attr, prog_fd, f"tracepoint {category}:{event}")


def attach_kprobe(prog_fd: int, function: bytes) -> int:
    """Run ``prog_fd`` at the entry of kernel function ``function`` through the kprobe PMU
    (FileNotFoundError when the kernel has none: no kprobes)."""
    pmu = parse_number(KPROBE_PMU_TYPE.read_text(), str(KPROBE_PMU_TYPE))
    name = ctypes.create_string_buffer(function)
    attr = event_attr(pmu, 0, ctypes.addressof(name))
    return _open_with_program(attr, prog_fd, f"kprobe {function.decode()}")
