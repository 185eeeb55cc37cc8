"""Pod IP allocation from a node's pod CIDR (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection


class PoolExhausted(RuntimeError):
    pass


def allocate(
    cidr: ipaddress.IPv4Network, used: Collection[ipaddress.IPv4Address]
) -> ipaddress.IPv4Address:
    """Lowest free host address; the first host address is the node gateway, never handed out."""
    reserved = {cidr.network_address + 1}
    for candidate in cidr.hosts():
        if candidate not in reserved and candidate not in used:
            return candidate
    raise PoolExhausted(f"pod CIDR {cidr} has no free address ({len(used)} in use)")
