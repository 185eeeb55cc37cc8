"""What the kernel says about a loaded program or map (``BPF_OBJ_GET_INFO_BY_FD``), and
opening one by its id, through libbpf (no BCC).

The compile cache (``templates``) never trusts its record alone: a pinned program is adopted
only when the kernel reports the recorded tag (a hash of its instructions) and the recorded
map ids, and each map only when its id, type and sizes are the recorded ones.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from agent.datapath.native import check, libbpf

BPF_PROG_TYPE_SCHED_CLS = 3
MAX_MAP_IDS = 64  # a program using more is not one of ours

libbpf.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                          ctypes.POINTER(ctypes.c_uint32)]
libbpf.bpf_obj_get_info_by_fd.restype = ctypes.c_int
libbpf.bpf_map_get_fd_by_id.argtypes = [ctypes.c_uint32]
libbpf.bpf_map_get_fd_by_id.restype = ctypes.c_int


class _ProgInfo(ctypes.Structure):
    """The leading fields of uapi ``struct bpf_prog_info`` (the kernel fills what we ask)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


class _MapInfo(ctypes.Structure):
    """The leading fields of uapi ``struct bpf_map_info``."""

    _fields_ = [
        *((n, ctypes.c_uint32) for n in
          ("type", "id", "key_size", "value_size", "max_entries", "map_flags")),
        ("name", ctypes.c_char * 16),
    ]


@dataclass(frozen=True, slots=True)
class ProgInfo:
    type: int
    id: int
    tag: str  # 16 hex digits, as bpftool prints it
    map_ids: tuple[int, ...]  # sorted
    name: str  # truncated by the kernel to 15 characters


@dataclass(frozen=True, slots=True)
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str


def prog_info(fd: int) -> ProgInfo:
    ids = (ctypes.c_uint32 * MAX_MAP_IDS)()
    info = _ProgInfo(nr_map_ids=MAX_MAP_IDS, map_ids=ctypes.addressof(ids))
    size = ctypes.c_uint32(ctypes.sizeof(info))
    check(libbpf.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
          f"bpf_obj_get_info_by_fd(program fd {fd})")
    if info.nr_map_ids > MAX_MAP_IDS:
        raise OSError(f"program {info.id} uses {info.nr_map_ids} maps (at most "
                      f"{MAX_MAP_IDS} expected)")
    return ProgInfo(info.type, info.id, bytes(info.tag).hex(),
                    tuple(sorted(ids[: info.nr_map_ids])), info.name.decode(errors="replace"))


def map_info(fd: int) -> MapInfo:
    info = _MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    check(libbpf.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
          f"bpf_obj_get_info_by_fd(map fd {fd})")
    return MapInfo(info.type, info.id, info.key_size, info.value_size, info.max_entries,
                   info.map_flags, info.name.decode(errors="replace"))


def map_fd_by_id(map_id: int) -> int:
    """Open map ``map_id`` (CAP_SYS_ADMIN); the caller closes the fd."""
    return check(libbpf.bpf_map_get_fd_by_id(map_id), f"bpf_map_get_fd_by_id({map_id})")
