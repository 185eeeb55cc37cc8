"""Byte offsets of kernel struct fields, read from the running kernel's BTF.

The kernel headers here are older than the kernel (DESIGN.md), so BCC's view of ``struct
sock`` or ``struct sk_buff`` would be wrong. The tracer reads the few fields it needs (a
socket's network namespace, a dropped packet's headers) with ``bpf_probe_read_kernel`` at
offsets taken from ``/sys/kernel/btf/vmlinux`` at load time, the way CO-RE relocations would.

    field_offset("sock", "__sk_common.skc_net")   # bytes, or None when BTF lacks the path

Anonymous unions and structs on the way are searched through, as C lets one write.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping

from agent.datapath.native import libbpf

_KIND_STRUCT, _KIND_UNION = 4, 5
_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG = 8, 9, 10, 11, 18
_SKIP = {_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG}


class _Type(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32),
                ("size_or_type", ctypes.c_uint32)]


class _Member(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32),
                ("offset", ctypes.c_uint32)]


libbpf.btf__load_vmlinux_btf.argtypes = []
libbpf.btf__load_vmlinux_btf.restype = ctypes.c_void_p
libbpf.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
libbpf.btf__find_by_name_kind.restype = ctypes.c_int32
libbpf.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
libbpf.btf__type_by_id.restype = ctypes.POINTER(_Type)
libbpf.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
libbpf.btf__name_by_offset.restype = ctypes.c_char_p
libbpf.btf__free.argtypes = [ctypes.c_void_p]
libbpf.btf__free.restype = None


def _kind(t: _Type) -> int:
    return (t.info >> 24) & 0x1F


def _members(btf: int, type_id: int) -> list[tuple[str, int, int]]:
    """(name, type id, bit offset) of a struct or union's members; [] for anything else."""
    ptr = libbpf.btf__type_by_id(btf, type_id)
    while ptr and _kind(ptr.contents) in _SKIP:
        type_id = ptr.contents.size_or_type
        ptr = libbpf.btf__type_by_id(btf, type_id)
    if not ptr or _kind(ptr.contents) not in (_KIND_STRUCT, _KIND_UNION):
        return []
    t = ptr.contents
    count, bitfields = t.info & 0xFFFF, bool(t.info >> 31)
    base = ctypes.cast(ptr, ctypes.c_void_p).value or 0
    array = ctypes.cast(base + ctypes.sizeof(_Type), ctypes.POINTER(_Member * count)).contents
    out = []
    for m in array:
        name = (libbpf.btf__name_by_offset(btf, m.name_off) or b"").decode()
        out.append((name, m.type, m.offset & 0xFFFFFF if bitfields else m.offset))
    return out


def _find(btf: int, type_id: int, name: str) -> tuple[int, int] | None:
    """(bit offset, type id) of member `name`, looking inside anonymous members too."""
    for member, member_type, bits in _members(btf, type_id):
        if member == name:
            return bits, member_type
        if not member:
            inner = _find(btf, member_type, name)
            if inner is not None:
                return bits + inner[0], inner[1]
    return None


@functools.cache
def field_offset(struct: str, path: str) -> int | None:
    """Byte offset of `path` ("a.b.c") inside `struct`, from vmlinux BTF; None if unknown."""
    return field_offsets({"": (struct, path)})[""]


def field_offsets(wanted: Mapping[str, tuple[str, str]]) -> dict[str, int | None]:
    """name -> byte offset of each (struct, path) in `wanted` (None if unknown), with one
    read of vmlinux BTF for them all (each read parses megabytes)."""
    btf = libbpf.btf__load_vmlinux_btf()
    if not btf:
        return dict.fromkeys(wanted)
    try:
        return {name: _offset(btf, struct, path) for name, (struct, path) in wanted.items()}
    finally:
        libbpf.btf__free(btf)


def _offset(btf: int, struct: str, path: str) -> int | None:
    type_id = libbpf.btf__find_by_name_kind(btf, struct.encode(), _KIND_STRUCT)
    if type_id <= 0:
        return None
    bits = 0
    for name in path.split("."):
        found = _find(btf, type_id, name)
        if found is None:
            return None
        bits += found[0]
        type_id = found[1]
    return None if bits % 8 else bits // 8


_KIND_ENUM = 6


class _Enum(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("val", ctypes.c_int32)]


def enum_values(name: str) -> dict[str, int]:
    """Member name -> value of ``enum name`` in vmlinux BTF; {} when absent."""
    btf = libbpf.btf__load_vmlinux_btf()
    if not btf:
        return {}
    try:
        type_id = libbpf.btf__find_by_name_kind(btf, name.encode(), _KIND_ENUM)
        if type_id <= 0:
            return {}
        ptr = libbpf.btf__type_by_id(btf, type_id)
        count = ptr.contents.info & 0xFFFF
        base = ctypes.cast(ptr, ctypes.c_void_p).value or 0
        values = ctypes.cast(base + ctypes.sizeof(_Type), ctypes.POINTER(_Enum * count)).contents
        return {
            (libbpf.btf__name_by_offset(btf, v.name_off) or b"").decode(): v.val for v in values
        }
    finally:
        libbpf.btf__free(btf)
