"""Pod IP allocation from a node's pod CIDR (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection


class PoolExhausted(RuntimeError):
    pass


def allocate(
    cidr: ipaddress.IPv4Network, used: Collection[ipaddress.IPv4Address]
) -> ipaddress.IPv4Address:
    """Lowest free host address. The first host is the node's gateway and the last its
    waypoint (lab/topology.py): neither is ever handed out."""
    reserved = {cidr.network_address + 1, cidr.broadcast_address - 1}
    for candidate in cidr.hosts():
        if candidate not in reserved and candidate not in used:
            return candidate
    raise PoolExhausted(f"pod CIDR {cidr} has no free address ({len(used)} in use)")
