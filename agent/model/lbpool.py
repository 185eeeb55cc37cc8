"""networking.tulle.io/v1alpha1 LoadBalancerIPPool: where LoadBalancer Services and Tulle's
Gateways get the addresses the outside reaches them at. Cluster-scoped, in the shape
platform engineers know from Cilium's CiliumLoadBalancerIPPool (``blocks`` of a ``cidr`` or a
``start``/``stop`` range, ``serviceSelector``, ``disabled``) and MetalLB's IPAddressPool.

IPv4 only: the datapath Tulle announces for is IPv4, so an IPv6 block is refused when the
pool is admitted rather than accepted and never served. Allocation:
``controlplane/lbipam/``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import ClassVar

from agent.model.meta import LabelSelector, ObjectMeta

# A LoadBalancer Service with this ``loadBalancerClass`` (or none) gets its address from the
# pools and is announced by Tulle; another class is another implementation's.
LOAD_BALANCER_CLASS = "tulle.io/lb"


@dataclass(frozen=True, slots=True)
class PoolBlock:
    """Exactly one of ``cidr``, or ``start`` (with ``stop``, inclusive; ``stop`` absent:
    ``start`` alone). A CIDR's first and last addresses are left out (network and
    broadcast), as Cilium does, except for a /31 or /32."""

    cidr: str | None = None
    start: str | None = None
    stop: str | None = None

    def bounds(self) -> tuple[int, int]:
        """First and last usable address, as integers (inclusive)."""
        if self.cidr is not None:
            net = ipaddress.IPv4Network(self.cidr, strict=False)
            first, last = int(net.network_address), int(net.broadcast_address)
            return (first, last) if net.prefixlen >= 31 else (first + 1, last - 1)
        assert self.start is not None
        first = int(ipaddress.IPv4Address(self.start))
        return first, int(ipaddress.IPv4Address(self.stop)) if self.stop else first


@dataclass(frozen=True, slots=True)
class LoadBalancerIPPoolSpec:
    blocks: tuple[PoolBlock, ...] = ()
    service_selector: LabelSelector | None = None  # None: every Service and Gateway
    disabled: bool = False  # no new allocations; addresses already given stay


@dataclass(frozen=True, slots=True)
class LoadBalancerIPPool:
    kind: ClassVar[str] = "LoadBalancerIPPool"
    metadata: ObjectMeta
    spec: LoadBalancerIPPoolSpec = field(default_factory=LoadBalancerIPPoolSpec)
