"""Run a loaded BPF program on a packet in the kernel, without any interface (BPF_PROG_TEST_RUN).

    result = test_run(prog.fd, bytes(Ether() / IP() / TCP()), ctx=SkBuff(mark=7, ifindex=1))
    assert result.retval == TC_ACT_OK and result.data_out == packet

A thin ctypes wrapper over libbpf's ``bpf_prog_test_run_opts`` (BCC 0.26 has no binding).
For tc (``sched_cls``) programs the kernel builds an skb from ``data`` (starting at the Ethernet
header; at least 14 bytes, and a complete IPv4 or IPv6 header when the ethertype says IP, so a
truncated IP header cannot be test-run) on the loopback device, runs the program once per ``repeat``
and returns the last run's verdict, the packet as the program left it, and the mean duration.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass

from agent.datapath.native import ENOTSUPP, check, libbpf

OUT_HEADROOM = 512  # default room for programs that grow the packet (encapsulation, options)

# tc verdicts (uapi/linux/pkt_cls.h), for readable asserts.
TC_ACT_UNSPEC, TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT = -1, 0, 2, 7


class TestRunOpts(ctypes.Structure):
    """libbpf 1.1's ``struct bpf_test_run_opts`` (bpf.h); ``sz`` carries our idea of its size."""

    __test__ = False  # pytest: not a test class, whatever the name says

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class SkBuff(ctypes.Structure):
    """uapi ``struct __sk_buff`` (192 bytes), the ctx of skb programs.

    Test runs accept only ``mark``, ``priority``, ``ingress_ifindex``, ``ifindex`` (0, 1 = lo, or
    an existing device), ``cb``, ``tstamp``, ``wire_len``, ``gso_segs``, ``gso_size`` and
    ``hwtstamp``; any other non-zero field makes the kernel answer EINVAL.
    """

    _fields_ = [
        ("len", ctypes.c_uint32),
        ("pkt_type", ctypes.c_uint32),
        ("mark", ctypes.c_uint32),
        ("queue_mapping", ctypes.c_uint32),
        ("protocol", ctypes.c_uint32),
        ("vlan_present", ctypes.c_uint32),
        ("vlan_tci", ctypes.c_uint32),
        ("vlan_proto", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("tc_index", ctypes.c_uint32),
        ("cb", ctypes.c_uint32 * 5),
        ("hash", ctypes.c_uint32),
        ("tc_classid", ctypes.c_uint32),
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("napi_id", ctypes.c_uint32),
        ("family", ctypes.c_uint32),
        ("remote_ip4", ctypes.c_uint32),
        ("local_ip4", ctypes.c_uint32),
        ("remote_ip6", ctypes.c_uint32 * 4),
        ("local_ip6", ctypes.c_uint32 * 4),
        ("remote_port", ctypes.c_uint32),
        ("local_port", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("flow_keys", ctypes.c_uint64),  # __bpf_md_ptr: a pointer kept 64-bit wide
        ("tstamp", ctypes.c_uint64),
        ("wire_len", ctypes.c_uint32),
        ("gso_segs", ctypes.c_uint32),
        ("sk", ctypes.c_uint64),  # __bpf_md_ptr
        ("gso_size", ctypes.c_uint32),
        ("tstamp_type", ctypes.c_uint8),
        ("_pad", ctypes.c_uint8 * 3),
        ("hwtstamp", ctypes.c_uint64),
    ]


assert ctypes.sizeof(SkBuff) == 192, "struct __sk_buff layout drifted from uapi"


@dataclass(frozen=True)
class TestRunResult:
    __test__ = False  # pytest: not a test class
    retval: int  # the program's return value (a tc verdict for sched_cls)
    data_out: bytes  # the packet after the program ran
    duration_ns: int  # mean per run, as the kernel measured it
    ctx_out: bytes | None = None  # the ctx after the run, when a ctx was passed in

    def skb(self) -> SkBuff:
        """``ctx_out`` read as ``struct __sk_buff``."""
        if self.ctx_out is None:
            raise ValueError("the test run was given no ctx, so it returned none")
        return SkBuff.from_buffer_copy(self.ctx_out.ljust(ctypes.sizeof(SkBuff), b"\0"))


libbpf.bpf_prog_test_run_opts.argtypes = [ctypes.c_int, ctypes.POINTER(TestRunOpts)]
libbpf.bpf_prog_test_run_opts.restype = ctypes.c_int

_HINTS = {
    errno.EINVAL: "data too short for the program type (tc: 14 bytes of Ethernet, and since "
    "kernel 6.x a whole IPv4/IPv6 header after an IP ethertype: 34/54 bytes), a ctx field "
    "the kernel does not accept, or a program type without test-run support",
    errno.ENOSPC: "data_size_out is smaller than the packet the program produced",
    errno.EBADF: "not an open file descriptor",
    errno.ENODEV: "ctx.ifindex names no device in this network namespace",
    ENOTSUPP: "this program type cannot be test-run",
    errno.EPERM: "needs root (CAP_BPF and CAP_NET_ADMIN)",
}


def test_run(
    prog_fd: int,
    data: bytes,
    *,
    repeat: int = 1,
    ctx: bytes | ctypes.Structure | None = None,
    data_size_out: int | None = None,
) -> TestRunResult:
    """Run program ``prog_fd`` on ``data``; see the module docstring.

    ``ctx`` is the program's context (``SkBuff`` or raw bytes); when given, the context the
    program left behind comes back as ``ctx_out``. ``data_size_out`` defaults to the input
    length plus :data:`OUT_HEADROOM`. Errors raise OSError naming the errno (``EINVAL``...).
    """
    data_in = ctypes.create_string_buffer(data, len(data))
    size_out = len(data) + OUT_HEADROOM if data_size_out is None else data_size_out
    data_out = ctypes.create_string_buffer(size_out)
    opts = TestRunOpts(
        sz=ctypes.sizeof(TestRunOpts),
        data_in=ctypes.cast(data_in, ctypes.c_void_p),
        data_out=ctypes.cast(data_out, ctypes.c_void_p),
        data_size_in=len(data),
        data_size_out=size_out,
        repeat=repeat,
    )
    ctx_bytes = bytes(ctx) if ctx is not None else b""
    ctx_in = ctypes.create_string_buffer(ctx_bytes, len(ctx_bytes))
    ctx_out = ctypes.create_string_buffer(len(ctx_bytes))
    if ctx is not None:
        opts.ctx_in = ctypes.cast(ctx_in, ctypes.c_void_p)
        opts.ctx_size_in = len(ctx_bytes)
        opts.ctx_out = ctypes.cast(ctx_out, ctypes.c_void_p)
        opts.ctx_size_out = len(ctx_bytes)
    what = f"bpf_prog_test_run_opts(prog_fd={prog_fd}, {len(data)} bytes)"
    check(libbpf.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), what, _HINTS)
    return TestRunResult(
        retval=ctypes.c_int32(opts.retval).value,  # tc verdicts are signed (TC_ACT_UNSPEC = -1)
        data_out=data_out.raw[: opts.data_size_out],
        duration_ns=opts.duration,
        ctx_out=ctx_out.raw[: opts.ctx_size_out] if ctx is not None else None,
    )


test_run.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test, though imported into tests
