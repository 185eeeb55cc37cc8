"""Which node announces which LoadBalancer address, pure.

Rendezvous (highest random weight) hashing over the ready nodes: every agent computes the same
answer from the same Nodes without talking to the others, each address lands on one node,
and when that node goes away only its addresses move (to the node with the next-highest
weight), so the others keep their announcer and clients' ARP caches stay right. MetalLB's
L2 mode elects the same way (a hash of node and address, over the nodes that can serve).

"Ready" is the Node's Ready condition, which each agent sets and clears on a graceful stop
(``AgentStopped``). A node that dies without clearing it keeps its addresses until something
marks it NotReady; the lab has no node-lifecycle controller yet (a lease would do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from agent.model.core import Service
from agent.model.gateway import Gateway, GatewayClass
from agent.model.ingress import Ingress, IngressClass
from agent.model.lbpool import LOAD_BALANCER_CLASS
from agent.model.node import Node
from gatewayapi import CONTROLLER_NAME
from gatewayapi.ingress.classes import class_addresses


def _weight(node: str, address: str) -> bytes:
    return hashlib.sha256(f"{node}\x00{address}".encode()).digest()


def elect(address: str, nodes: Iterable[str]) -> str | None:
    """The node that announces ``address`` among ``nodes``; None when there is none."""
    return max(nodes, key=lambda n: (_weight(n, address), n), default=None)


def ready_nodes(nodes: Iterable[Node]) -> list[str]:
    return [
        n.metadata.name
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    ]


def load_balancer_addresses(
    services: Iterable[Service],
    gateways: Iterable[Gateway],
    classes: Iterable[GatewayClass],
    ingresses: Iterable[Ingress] = (),
    ingress_classes: Iterable[IngressClass] = (),
) -> set[str]:
    """Every address Tulle announces: the ingress IPs of LoadBalancer Services of Tulle's
    class (or none), the IPAddress addresses of Tulle's Gateways, and the addresses of
    Tulle's IngressClasses (their Ingresses' status)."""
    found = {
        ip
        for s in services
        if s.spec.load_balancer_class in (None, LOAD_BALANCER_CLASS)
        for ip in s.load_balancer_ips
    }
    ours = {c.metadata.name for c in classes if c.spec.controller_name == CONTROLLER_NAME}
    found |= {
        a.value
        for g in gateways
        if g.spec.gateway_class_name in ours
        for a in g.status.addresses
        if a.type == "IPAddress"
    }
    for addresses in class_addresses(ingresses, ingress_classes).values():
        found.update(addresses)
    return found


def announced_by(node: str, addresses: Iterable[str], ready: Iterable[str]) -> frozenset[str]:
    """The addresses ``node`` announces: those elected to it. A node not ready announces
    nothing, whatever the others think."""
    candidates = sorted(set(ready))
    if node not in candidates:
        return frozenset()
    return frozenset(a for a in addresses if elect(a, candidates) == node)
