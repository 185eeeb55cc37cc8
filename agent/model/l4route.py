"""gateway.networking.k8s.io TCPRoute and UDPRoute (v1 since Gateway API v1.6).

Both route by the listener's port alone: no hostnames, matches or filters; a rule is a
list of weighted backends (weight 0..1000000, default 1; weight 0 sends nothing). The two
kinds have one shape, so they share the rule and spec types. CRD bounds (applied by the
converter): 1 to 16 rules, each with 1 to 16 backendRefs; a core Service needs ``port``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.model.gateway import ParentReference, RouteStatus
from agent.model.meta import ObjectMeta


@dataclass(frozen=True, slots=True)
class BackendRef:
    """A weighted backend; group "" + kind Service is a core Service."""

    name: str
    group: str = ""
    kind: str = "Service"
    namespace: str | None = None
    port: int | None = None
    weight: int = 1


@dataclass(frozen=True, slots=True)
class L4RouteRule:
    name: str | None = None
    backend_refs: tuple[BackendRef, ...] = ()


@dataclass(frozen=True, slots=True)
class L4RouteSpec:
    parent_refs: tuple[ParentReference, ...] = ()
    rules: tuple[L4RouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TCPRoute:
    kind: ClassVar[str] = "TCPRoute"
    metadata: ObjectMeta
    spec: L4RouteSpec = field(default_factory=L4RouteSpec)
    status: RouteStatus = RouteStatus()


@dataclass(frozen=True, slots=True)
class UDPRoute:
    kind: ClassVar[str] = "UDPRoute"
    metadata: ObjectMeta
    spec: L4RouteSpec = field(default_factory=L4RouteSpec)
    status: RouteStatus = RouteStatus()


L4Route = TCPRoute | UDPRoute
