"""Which BPF hooks, maps and helpers this kernel offers, found by trying them.

:func:`feature_probe` loads two-instruction programs (``r0 = 1; exit``) straight through
libbpf, with no clang involved, and attaches the tracing ones for an instant (perf events by
``agent.datapath.perf``: no libbcc, which a restart never loads), so the whole probe takes
well under a second. Reading ``/proc/config.gz`` would not do: lockdown and LSMs refuse
hooks that are configured in. Results are cached for the life of the process.

Keys: program types (``sched_cls``, ``xdp``, ``cgroup_sock_addr_connect4``, ``sock_ops``, ...),
attachable hooks (``tracepoint:sock:inet_sock_set_state``, ``kprobe``, ``fentry``), map types
(``map:ringbuf``, ...) and helpers (``helper:redirect_peer``, ...).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable

from agent.datapath import perf
from agent.datapath.native import libbpf, raw_tracepoint_open

# uapi/linux/bpf.h numbers: stable kernel ABI.
_PROG_KPROBE, _PROG_TRACEPOINT, _PROG_RAW_TRACEPOINT, _PROG_TRACING = 2, 5, 17, 26
_SCHED_CLS, _CGROUP_SOCK_ADDR = 3, 18
_TRACE_FENTRY = 24
_BTF_KIND_FUNC = 12

# name -> (program type, expected attach type or 0)
_PROG_TYPES: dict[str, tuple[int, int]] = {
    "sched_cls": (_SCHED_CLS, 0),
    "xdp": (6, 0),
    "cgroup_skb": (8, 0),
    "sock_ops": (13, 0),
    "sk_skb": (14, 0),
    "sk_msg": (16, 0),
    "cgroup_sock_addr_connect4": (_CGROUP_SOCK_ADDR, 10),
    "cgroup_sock_addr_sendmsg4": (_CGROUP_SOCK_ADDR, 14),
    "cgroup_sock_addr_recvmsg4": (_CGROUP_SOCK_ADDR, 19),
    "sk_lookup": (30, 36),
    "tracepoint": (_PROG_TRACEPOINT, 0),
    "raw_tracepoint": (_PROG_RAW_TRACEPOINT, 0),
}
_TRACEPOINTS = (
    ("sock", "inet_sock_set_state"),
    ("tcp", "tcp_retransmit_skb"),
    ("tcp", "tcp_probe"),
    ("skb", "kfree_skb"),
)
_MAP_TYPES = {"percpu_array": 6, "lru_hash": 9, "lpm_trie": 11, "sockhash": 18, "ringbuf": 27}
# helper name -> (id, program type it is probed for)
_HELPERS = {
    "skb_store_bytes": (9, _SCHED_CLS),
    "l4_csum_replace": (11, _SCHED_CLS),
    "csum_diff": (28, _SCHED_CLS),
    "get_socket_cookie": (46, _CGROUP_SOCK_ADDR),
    "skb_adjust_room": (50, _SCHED_CLS),
    "fib_lookup": (69, _SCHED_CLS),
    "sk_lookup_tcp": (84, _SCHED_CLS),
    "get_netns_cookie": (122, _CGROUP_SOCK_ADDR),
    "sk_assign": (124, _SCHED_CLS),
    "ringbuf_output": (130, _SCHED_CLS),
    "redirect_neigh": (152, _SCHED_CLS),
    "redirect_peer": (155, _SCHED_CLS),
    "loop": (181, _SCHED_CLS),
}
_KPROBE_TARGET = b"tcp_v4_connect"  # present in every kernel with IPv4


class _ProgLoadOpts(ctypes.Structure):
    """Head of libbpf's ``struct bpf_prog_load_opts``; libbpf accepts a smaller ``sz``."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("attempts", ctypes.c_int),
        ("expected_attach_type", ctypes.c_uint32),
        ("prog_btf_fd", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_ifindex", ctypes.c_uint32),
        ("kern_version", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
    ]


def _return(value: int) -> ctypes.Array[ctypes.c_uint8]:
    """``r0 = value; exit`` (BPF_ALU64|BPF_MOV|BPF_K, then BPF_JMP|BPF_EXIT)."""
    return (ctypes.c_uint8 * 16)(0xB7, 0, 0, 0, value, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0)


# The verifier checks return ranges: recvmsg4 must return 1 ("allow"), fentry must return 0.
# Every other type probed here accepts 1.
_RETURN_ONE, _RETURN_ZERO = _return(1), _return(0)

libbpf.bpf_prog_load.argtypes = [
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.POINTER(_ProgLoadOpts),
]
libbpf.bpf_prog_load.restype = ctypes.c_int
libbpf.btf__load_vmlinux_btf.argtypes = []
libbpf.btf__load_vmlinux_btf.restype = ctypes.c_void_p
libbpf.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
libbpf.btf__find_by_name_kind.restype = ctypes.c_int32
libbpf.btf__free.argtypes = [ctypes.c_void_p]
libbpf.btf__free.restype = None
for _probe in ("libbpf_probe_bpf_map_type", "libbpf_probe_bpf_prog_type"):
    getattr(libbpf, _probe).argtypes = [ctypes.c_int, ctypes.c_void_p]
    getattr(libbpf, _probe).restype = ctypes.c_int
libbpf.libbpf_probe_bpf_helper.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
libbpf.libbpf_probe_bpf_helper.restype = ctypes.c_int
libbpf.libbpf_set_print.argtypes = [ctypes.c_void_p]
libbpf.libbpf_set_print.restype = ctypes.c_void_p


def _load(prog_type: int, attach_type: int = 0, attach_btf_id: int = 0) -> int:
    """A trivial program's fd, or -1 when the kernel refuses the type."""
    opts = _ProgLoadOpts(
        sz=ctypes.sizeof(_ProgLoadOpts),
        expected_attach_type=attach_type,
        attach_btf_id=attach_btf_id,
    )
    insns = _RETURN_ZERO if prog_type == _PROG_TRACING else _RETURN_ONE
    fd = libbpf.bpf_prog_load(prog_type, b"tulle_probe", b"GPL", insns, 2, opts)
    return fd if fd >= 0 else -1


def _with_prog(prog_type: int, attach: Callable[[int], bool], attach_btf_id: int = 0) -> bool:
    attach_type = _TRACE_FENTRY if prog_type == _PROG_TRACING else 0
    fd = _load(prog_type, attach_type, attach_btf_id)
    if fd < 0:
        return False
    try:
        return attach(fd)
    finally:
        os.close(fd)


def _attach_tracepoint(category: str, event: str) -> Callable[[int], bool]:
    def attach(prog_fd: int) -> bool:
        try:
            os.close(perf.attach_tracepoint(prog_fd, category, event))
        except (OSError, ValueError):
            return False
        return True

    return attach


def _attach_kprobe(prog_fd: int) -> bool:
    try:
        os.close(perf.attach_kprobe(prog_fd, _KPROBE_TARGET))
    except (OSError, ValueError):
        return False
    return True


def _attach_raw(event: bytes | None) -> Callable[[int], bool]:
    """Attach through bpf_raw_tracepoint_open: a raw tracepoint, or (None) fentry."""
    def attach(prog_fd: int) -> bool:
        try:
            os.close(raw_tracepoint_open(event, prog_fd))
        except OSError:
            return False
        return True

    return attach


def _probe_fentry() -> bool:
    btf = libbpf.btf__load_vmlinux_btf()
    if not btf:
        return False
    try:
        func_id = libbpf.btf__find_by_name_kind(btf, _KPROBE_TARGET, _BTF_KIND_FUNC)
    finally:
        libbpf.btf__free(btf)
    return func_id > 0 and _with_prog(_PROG_TRACING, _attach_raw(None), attach_btf_id=func_id)


def _probe_all() -> dict[str, bool]:
    found: dict[str, bool] = {}
    for name, (prog_type, attach_type) in _PROG_TYPES.items():
        fd = _load(prog_type, attach_type)
        found[name] = fd >= 0
        if fd >= 0:
            os.close(fd)
    for category, event in _TRACEPOINTS:
        attach = _attach_tracepoint(category, event)
        found[f"tracepoint:{category}:{event}"] = _with_prog(_PROG_TRACEPOINT, attach)
    found["raw_tracepoint:kfree_skb"] = _with_prog(_PROG_RAW_TRACEPOINT, _attach_raw(b"kfree_skb"))
    found["kprobe"] = _with_prog(_PROG_KPROBE, _attach_kprobe)
    found["fentry"] = _probe_fentry()
    for name, map_type in _MAP_TYPES.items():
        found[f"map:{name}"] = libbpf.libbpf_probe_bpf_map_type(map_type, None) == 1
    found["ringbuf"] = found["map:ringbuf"]
    for name, (helper, prog_type) in _HELPERS.items():
        found[f"helper:{name}"] = libbpf.libbpf_probe_bpf_helper(prog_type, helper, None) == 1
    return found


@functools.cache
def feature_probe() -> dict[str, bool]:
    """Feature name -> usable here. Needs root (CAP_BPF, CAP_PERFMON); cached per process.

    Callers must not mutate the returned dict (it is shared); copy it first.
    """
    # libbpf explains every refusal on stderr; we only count. Its print hook, not fd 2:
    # redirecting fd 2 would swallow what other threads (the agent's log) write meanwhile.
    old = libbpf.libbpf_set_print(None)
    try:
        return _probe_all()
    finally:
        libbpf.libbpf_set_print(old)
