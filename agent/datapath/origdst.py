"""The waypoint's view of transparent redirection: which VIP:port a connection asked for.

Reads the pinned ``l7_orig_dst_v1`` map directly through libbpf (``bpf_obj_get``,
``bpf_map_lookup_elem``), without BCC: loading BCC compiled C just to open one map, which
cost the waypoint seconds of start-up and ~200 MB, and a restarted waypoint was down for
that long. The key and value layouts come from ``bpf/lib/redirect.h`` through
`cdefs.struct_type` (defined once, in C), and are checked against the map's own sizes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from agent.datapath.byteorder import be16, be32, from_be16, from_be32
from agent.datapath.cdefs import LIB_DIR, enum_values, struct_type
from agent.datapath.native import check, failure, libbpf, obj_get

TCP = 6
MAP_NAME = "l7_orig_dst_v1"
OrigDstKey = struct_type(LIB_DIR / "redirect.h", "orig_dst_key")
OrigDst = struct_type(LIB_DIR / "redirect.h", "orig_dst")

libbpf.bpf_map_lookup_elem.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libbpf.bpf_map_lookup_elem.restype = ctypes.c_int
libbpf.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                          ctypes.POINTER(ctypes.c_uint32)]
libbpf.bpf_obj_get_info_by_fd.restype = ctypes.c_int


class MapInfoHead(ctypes.Structure):
    """The leading fields of uapi ``struct bpf_map_info``; the kernel fills as much as we ask."""

    _fields_ = [(name, ctypes.c_uint32) for name in
                ("type", "id", "key_size", "value_size", "max_entries", "map_flags")]


WAYPOINT_MARK = enum_values(LIB_DIR / "redirect.h", "tulle_mark")["TULLE_MARK_WAYPOINT"]
"""SO_MARK on the waypoint's upstream sockets: to_pod.c admits this node's waypoint address
as the waypoint only with it."""


@dataclass(frozen=True, slots=True)
class OriginalDestination:
    address: str
    port: int
    client_identity: int


class OriginalDestinations:
    """Reads l7_orig_dst_v1, written by from_pod.c when it redirects a connection."""

    def __init__(self, pin_dir: Path, wait: float = 60.0) -> None:
        # The agent's datapath owns the map: never create it here, only open it once pinned.
        pinned = pin_dir / MAP_NAME
        deadline = time.monotonic() + wait
        while not pinned.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{pinned} did not appear: is the node agent's datapath up?")
            time.sleep(0.1)
        self.fd = obj_get(pinned)
        try:
            _check_layout(self.fd, pinned)
        except BaseException:
            os.close(self.fd)
            raise

    def lookup(self, client: str, client_port: int) -> OriginalDestination | None:
        key = OrigDstKey(client=be32(client), client_port=be16(client_port), proto=TCP)
        value = OrigDst()
        ret = libbpf.bpf_map_lookup_elem(self.fd, ctypes.byref(key), ctypes.byref(value))
        if ret < 0:
            if failure(ret) == errno.ENOENT:
                return None  # not a connection the datapath redirected
            check(ret, f"bpf_map_lookup_elem({MAP_NAME})")
        return OriginalDestination(str(from_be32(value.vip)), from_be16(value.vport),
                                   value.client_identity)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _check_layout(fd: int, pinned: Path) -> None:
    """Refuse a map whose key or value size differs from redirect.h's: reading it with our
    layout would return garbage destinations."""
    info = MapInfoHead()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    check(libbpf.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
          f"bpf_obj_get_info_by_fd({pinned})")
    want = (ctypes.sizeof(OrigDstKey), ctypes.sizeof(OrigDst))
    if (info.key_size, info.value_size) != want:
        raise RuntimeError(
            f"{pinned}: key/value sizes {info.key_size}/{info.value_size} differ from "
            f"bpf/lib/redirect.h's {want[0]}/{want[1]}: agent and waypoint run different "
            "versions; restart both"
        )
