"""Network-order fields as BPF maps hold them: an ``__be32``/``__be16`` read as a native
integer. No BCC here, so readers that must stay light (the waypoint) share these with the
map writers."""

from __future__ import annotations

import ipaddress
import sys


def be32(ip: ipaddress.IPv4Address | str) -> int:
    return int.from_bytes(ipaddress.IPv4Address(ip).packed, sys.byteorder)


def be16(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), sys.byteorder)


def from_be32(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value.to_bytes(4, sys.byteorder))


def from_be16(value: int) -> int:
    return int.from_bytes(value.to_bytes(2, sys.byteorder), "big")
