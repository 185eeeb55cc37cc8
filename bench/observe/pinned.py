"""Pinned BPF maps read and written through libbpf (BCC 0.26 cannot open a pinned map by
path): the runtime config array (`tulle_config_v1`, u32 -> u64) and per-CPU u64 counters
(`events_lost_v1`). What `bpftool map update pinned PATH key ... value ...` would do."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from agent.datapath.bpf_loader import open_pinned
from agent.datapath.cdefs import LIB_DIR, enum_values
from agent.datapath.native import check, libbpf

CFG_FLOW_EVENTS_OFF = enum_values(LIB_DIR / "common.h", "tulle_config")[
    "TULLE_CFG_FLOW_EVENTS_OFF"]

libbpf.bpf_map_update_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                       ctypes.c_uint64]
libbpf.bpf_map_update_elem.restype = ctypes.c_int
libbpf.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libbpf.bpf_map_lookup_elem.restype = ctypes.c_int
libbpf.libbpf_num_possible_cpus.argtypes = []
libbpf.libbpf_num_possible_cpus.restype = ctypes.c_int

BPF_ANY = 0


def read_u64(path: Path, key: int) -> int:
    """Value at `key` of a pinned array of u64."""
    fd = open_pinned(path)
    try:
        k, v = ctypes.c_uint32(key), ctypes.c_uint64()
        check(libbpf.bpf_map_lookup_elem(fd, ctypes.byref(k), ctypes.byref(v)),
              f"bpf_map_lookup_elem({path}, key {key})")
        return int(v.value)
    finally:
        os.close(fd)


def write_u64(path: Path, key: int, value: int) -> None:
    """Set `key` of a pinned array of u64 to `value`, and read it back."""
    fd = open_pinned(path)
    try:
        k, v = ctypes.c_uint32(key), ctypes.c_uint64(value)
        check(libbpf.bpf_map_update_elem(fd, ctypes.byref(k), ctypes.byref(v), BPF_ANY),
              f"bpf_map_update_elem({path}, key {key}, value {value})")
    finally:
        os.close(fd)
    if read_u64(path, key) != value:
        raise RuntimeError(f"{path}[{key}] does not read back as {value}")


def percpu_sum(path: Path, key: int = 0) -> int:
    """Sum over CPUs of a pinned per-CPU array of u64 at `key`."""
    cpus = check(libbpf.libbpf_num_possible_cpus(), "libbpf_num_possible_cpus()")
    fd = open_pinned(path)
    try:
        k, values = ctypes.c_uint32(key), (ctypes.c_uint64 * cpus)()
        check(libbpf.bpf_map_lookup_elem(fd, ctypes.byref(k), values),
              f"bpf_map_lookup_elem({path}, key {key})")
        return int(sum(values))
    finally:
        os.close(fd)
