"""Backend references: resolution, ReferenceGrants and weighted choice.

Spec (HTTPBackendRef, BackendObjectReference, ReferenceGrant): only core Services are
supported backends (anything else is InvalidKind); a reference into another namespace
needs a ReferenceGrant in that namespace from HTTPRoutes of the route's namespace
(RefNotPermitted); a missing Service, or a port the Service does not expose, is
BackendNotFound. An ExternalName Service is UnsupportedValue: the spec leaves ExternalName
backends implementation-specific and says implementations SHOULD NOT support them (a DNS
name outside the cluster, CVE-2021-25740); Tulle does not forward to one. An invalid
backend keeps its weight: its share of requests gets 500.
Weight 0 is never chosen.

GEP-1426 lets meshes skip ReferenceGrants for Service parents because mesh routes only
narrow what a client could reach anyway. Tulle's waypoint forwards with its own
identity, so a mesh route could widen reach; Tulle therefore requires a ReferenceGrant
for cross-namespace backends whatever the parent (the exception GEP-1426 provides for).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from agent.model.core import Service, ServiceType
from agent.model.gateway import GATEWAY_GROUP, ReferenceGrant
from gatewayapi.types import BackendTarget


class RefProblem(StrEnum):
    """ResolvedRefs reasons for a reference that cannot be used."""

    INVALID_KIND = "InvalidKind"
    REF_NOT_PERMITTED = "RefNotPermitted"
    BACKEND_NOT_FOUND = "BackendNotFound"
    UNSUPPORTED_VALUE = "UnsupportedValue"


@dataclass(frozen=True, slots=True)
class Resolution:
    """A backend reference resolved to a target, or the reason it cannot be."""

    target: BackendTarget | None
    problem: RefProblem | None = None
    message: str = ""


class Grants:
    """ReferenceGrants indexed by the namespace they live in (the referent's)."""

    def __init__(self, grants: Iterable[ReferenceGrant]) -> None:
        self._by_namespace: dict[str, list[ReferenceGrant]] = {}
        for grant in grants:
            self._by_namespace.setdefault(grant.metadata.namespace, []).append(grant)

    def allows(
        self,
        from_group: str,
        from_kind: str,
        from_namespace: str,
        to_group: str,
        to_kind: str,
        to_namespace: str,
        to_name: str,
    ) -> bool:
        if from_namespace == to_namespace:
            return True
        for grant in self._by_namespace.get(to_namespace, ()):
            spec = grant.spec
            if not any(
                f.group == from_group and f.kind == from_kind and f.namespace == from_namespace
                for f in spec.from_
            ):
                continue
            if any(
                t.group == to_group and t.kind == to_kind and t.name in (None, to_name)
                for t in spec.to
            ):
                return True
        return False


ServiceIndex = Mapping[tuple[str, str], Service]


def resolve(
    *,
    group: str,
    kind: str,
    name: str,
    namespace: str | None,
    port: int | None,
    route_namespace: str,
    services: ServiceIndex,
    grants: Grants,
    route_kind: str = "HTTPRoute",
) -> Resolution:
    """Resolve one backendRef (or mirror backendRef) of an HTTPRoute or a GRPCRoute
    (``route_kind``: a ReferenceGrant names the kind it admits references from)."""
    target_ns = namespace or route_namespace
    where = f"{target_ns}/{name}"
    if (group, kind) != ("", "Service"):
        shown = f"{group}/{kind}" if group else kind
        return Resolution(
            None, RefProblem.INVALID_KIND, f"backend {where}: kind {shown} is not supported"
        )
    if not grants.allows(
        GATEWAY_GROUP, route_kind, route_namespace, "", "Service", target_ns, name
    ):
        return Resolution(
            None,
            RefProblem.REF_NOT_PERMITTED,
            f"backend Service {where} is in another namespace and no ReferenceGrant in "
            f"{target_ns} allows {route_kind}s from {route_namespace} to refer to it",
        )
    service = services.get((target_ns, name))
    if service is None:
        return Resolution(None, RefProblem.BACKEND_NOT_FOUND, f"Service {where} not found")
    if service.spec.type is ServiceType.EXTERNAL_NAME:
        return Resolution(
            None,
            RefProblem.UNSUPPORTED_VALUE,
            f"Service {where} is of type ExternalName ({service.spec.external_name}), "
            "which Tulle does not forward to; use a Service with endpoints",
        )
    if port is None or all(p.port != port for p in service.spec.ports):
        return Resolution(
            None,
            RefProblem.BACKEND_NOT_FOUND,
            f"Service {where} has no port {port}",
        )
    return Resolution(BackendTarget(target_ns, name, port))


# --- weighted choice -------------------------------------------------------------------


class WeightedChoice:
    """Picks an index in proportion to integer weights from a uniform draw in [0, 1).

    Cumulative weights are bisected with an integer ticket, so an entry of weight 0
    (which adds nothing to the running sum) can never be the first cumulative value
    greater than the ticket, and is never chosen.
    """

    __slots__ = ("_cumulative", "total")

    def __init__(self, weights: Sequence[int]) -> None:
        running = 0
        cumulative = []
        for weight in weights:
            running += max(weight, 0)
            cumulative.append(running)
        self._cumulative = cumulative
        self.total = running

    def pick(self, draw: float) -> int | None:
        """The chosen index, or None when every weight is 0."""
        if self.total == 0:
            return None
        ticket = min(int(draw * self.total), self.total - 1)
        return bisect_right(self._cumulative, ticket)
