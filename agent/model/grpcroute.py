"""gateway.networking.k8s.io GRPCRoute (v1, GEP-1016).

Filters and backend references have the same shape as HTTPRoute's (the upstream types
reuse ``HTTPHeaderFilter``, ``HTTPRequestMirrorFilter`` and ``BackendRef``), so this module
reuses ``HTTPRouteFilter`` and ``HTTPBackendRef``; the converter admits only the four filter
types GRPCRoute allows. CRD defaults are applied by the converter: a method match's type
and a header match's type are Exact, a backend's weight is 1. A rule with no matches
matches every gRPC request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from agent.model.gateway import ParentReference, RouteStatus
from agent.model.httproute import (
    FilterType,
    HTTPBackendRef,
    HTTPRouteFilter,
    SessionPersistence,
)
from agent.model.meta import ObjectMeta

GRPC_FILTER_TYPES = (
    FilterType.REQUEST_HEADER_MODIFIER,
    FilterType.RESPONSE_HEADER_MODIFIER,
    FilterType.REQUEST_MIRROR,
    FilterType.EXTENSION_REF,
)
"""The filter types GRPCRouteFilter's enum admits."""


class GRPCMatchType(StrEnum):
    """How a method match or a header match compares (both enums have these two values)."""

    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


@dataclass(frozen=True, slots=True)
class GRPCMethodMatch:
    """At least one of service and method is set. Exact: case-sensitive comparison of the
    service (``pkg.Service``) and of the method; RegularExpression: RE2, full match."""

    type: GRPCMatchType = GRPCMatchType.EXACT
    service: str | None = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class GRPCHeaderMatch:
    """Names compare case-insensitively; of equivalent names only the first counts."""

    name: str
    value: str
    type: GRPCMatchType = GRPCMatchType.EXACT


@dataclass(frozen=True, slots=True)
class GRPCRouteMatch:
    """Both conditions must hold; no method match means every service and method."""

    method: GRPCMethodMatch | None = None
    headers: tuple[GRPCHeaderMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class GRPCRouteRule:
    """A request matches the rule if ANY match holds (no matches: every gRPC request)."""

    name: str | None = None
    matches: tuple[GRPCRouteMatch, ...] = ()
    filters: tuple[HTTPRouteFilter, ...] = ()
    backend_refs: tuple[HTTPBackendRef, ...] = ()
    session_persistence: SessionPersistence | None = None


@dataclass(frozen=True, slots=True)
class GRPCRouteSpec:
    """Empty ``hostnames`` means all hostnames of the parent listener."""

    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[GRPCRouteRule, ...] = ()


@dataclass(frozen=True, slots=True)
class GRPCRoute:
    kind: ClassVar[str] = "GRPCRoute"
    metadata: ObjectMeta
    spec: GRPCRouteSpec = field(default_factory=GRPCRouteSpec)
    status: RouteStatus = RouteStatus()
