"""Address allocation (pure): Pod IPs from a node's pod CIDR, ClusterIPs (for Services, and
for Gateways by the Gateway controller) from the service range."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection
from typing import Any

from lab.topology import SERVICE_CIDR

# Conventional addresses: the API server and cluster DNS.
RESERVED_SERVICE_IPS = frozenset(
    {SERVICE_CIDR.network_address + 1, SERVICE_CIDR.network_address + 10}
)


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


def allocate_cluster_ip(key: tuple[str, ...], used: set[Any]) -> ipaddress.IPv4Address:
    """Start from a hash of the name so addresses are stable across re-creations of a lab."""
    size = SERVICE_CIDR.num_addresses
    start = int.from_bytes(hashlib.sha256("/".join(key).encode()).digest()[:4], "big") % size
    for step in range(size):
        ip = SERVICE_CIDR.network_address + (start + step) % size
        if ip in (SERVICE_CIDR.network_address, SERVICE_CIDR.broadcast_address):
            continue
        if ip not in used and ip not in RESERVED_SERVICE_IPS:
            return ip
    raise RuntimeError(f"service range {SERVICE_CIDR} is full")
