"""gateway.networking.k8s.io TLSRoute (v1, standard since Gateway API v1.5; GEP-2643).

A TLSRoute routes TLS connections by the server name (SNI) of their ClientHello, on
listeners of protocol TLS: Passthrough (core: the bytes go to the backend still
encrypted) and Terminate (extended, ``TLSRouteModeTerminate``: the Gateway terminates TLS
and forwards the plaintext TCP stream). ``hostnames`` is required (1..1024; exact names or
one leading ``*.`` label; no IPs, RFC 6066) and there is exactly one rule, whose
``backendRefs`` (1..16) carry weights (default 1; 0 sends none) and no filters: the rule
and backendRef types of TCPRoute and UDPRoute (``agent.model.l4route``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.model.gateway import ParentReference, RouteStatus
from agent.model.l4route import L4RouteRule
from agent.model.meta import ObjectMeta


@dataclass(frozen=True, slots=True)
class TLSRouteSpec:
    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[L4RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TLSRoute:
    kind: ClassVar[str] = "TLSRoute"
    metadata: ObjectMeta
    spec: TLSRouteSpec = field(default_factory=TLSRouteSpec)
    status: RouteStatus = RouteStatus()
