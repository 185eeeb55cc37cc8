"""Value types shared by the route engine: requests, responses, parents, backends and the
outcome of a lookup. All are immutable; the engine never mutates what it is given."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple

from gatewayapi.headers import Headers

CONTROLLER_NAME = "tulle.io/gateway-controller"
"""The GatewayClass ``controllerName`` Tulle answers for."""
INGRESS_CONTROLLER_NAME = "tulle.io/ingress-controller"
"""The IngressClass ``spec.controller`` Tulle answers for (deploy/base/ingressclass.yaml)."""


# --- requests and responses ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the waypoint sees it.

    ``authority`` is the Host header (or HTTP/2 ``:authority``), port included when sent;
    ``target`` is the origin-form request target, path plus ``?query``.
    """

    method: str
    scheme: str
    authority: str
    target: str
    headers: Headers = Headers()

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    @property
    def host(self) -> str:
        """The authority without its port, lowercased."""
        return host_of(self.authority)

    def with_path(self, path: str) -> Request:
        """The request with its path replaced and its query kept."""
        query = self.query
        return replace(self, target=f"{path}?{query}" if query else path)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Headers = Headers()
    body: bytes = b""


def host_of(authority: str) -> str:
    """The host part of an authority: no port, no trailing dot, lowercase. IPv6 literals
    keep their brackets ("[::1]:8080" gives "[::1]")."""
    host = authority
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end >= 0 else host
    else:
        colon = host.rfind(":")
        if colon >= 0:
            host = host[:colon]
    if host.endswith("."):
        host = host[:-1]
    return host.lower()


# --- parents, routes and backends ------------------------------------------------------


class GatewayParent(NamedTuple):
    """North-south: the Gateway ``namespace/name`` whose listeners on ``port`` got the
    request."""

    namespace: str
    name: str
    port: int


class ServiceParent(NamedTuple):
    """East-west (GAMMA): a request addressed to Service ``namespace/name`` on ``port``."""

    namespace: str
    name: str
    port: int


class IngressParent(NamedTuple):
    """North-south by Ingress: a connection to the address of IngressClass
    ``ingress_class`` on ``port`` (80 or 443); every Ingress of the class is served there."""

    ingress_class: str
    port: int


Parent = GatewayParent | ServiceParent | IngressParent


class RuleRef(NamedTuple):
    """Which rule answered: for flows, metrics and logs."""

    namespace: str
    route: str
    rule_index: int
    rule_name: str | None
    kind: str = "HTTPRoute"
    """The route's kind: HTTPRoute or GRPCRoute."""

    def __str__(self) -> str:
        rule = self.rule_name if self.rule_name is not None else str(self.rule_index)
        return f"{self.namespace}/{self.route}#{rule}"


class BackendTarget(NamedTuple):
    """A resolved Service backend. The proxy resolves its endpoints elsewhere."""

    namespace: str
    name: str
    port: int

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


# --- lookup outcome --------------------------------------------------------------------


class NoRouteReason(StrEnum):
    UNKNOWN_PARENT = "UnknownParent"
    """No table for this parent. For a Service parent the waypoint should pass the request
    through untouched (GEP-1426: no route means Kubernetes' implicit behaviour)."""
    NO_MATCHING_LISTENER = "NoMatchingListener"
    """The Gateway has no programmed listener on this port whose hostname matches."""
    NO_MATCHING_RULE = "NoMatchingRule"
    """Routes are attached, but none of their rules matches the request."""


@dataclass(frozen=True, slots=True)
class NoRoute:
    """No rule selected; the Gateway API answer is 404."""

    reason: NoRouteReason
    detail: str = ""

    @property
    def status(self) -> int:
        return 404


@dataclass(frozen=True, slots=True)
class Timeouts:
    """GEP-1742 timeouts in seconds. None means no deadline: unset, or set to zero, which
    disables the timeout."""

    request: float | None = None
    backend_request: float | None = None


NO_TIMEOUTS = Timeouts()
