"""TCPRoute and UDPRoute (v1): where they attach, what they forward to, and which one
serves each TCP or UDP listener. The kernel serves them (agent/datapath/l4_routes.py); no
waypoint is involved.

Spec and Tulle's reading of it:

- A TCP listener serves TCPRoutes, a UDP listener UDPRoutes (``attach.LISTENER_KINDS``);
  parentRefs attach as for every route kind (sectionName and port select listeners, else
  NoMatchingParent; allowedRoutes kinds and namespaces admit, else NotAllowedByListeners).
- A route has no matches: a connection is classified by the listener's port alone, so
  every rule's backendRefs share the listener's connections by weight (a backendRef's
  weight over the sum of all of them; weight 0 gets none).
- One listener, one route. The spec says each TCP listener selects exactly one route, and
  that among equally specific routes the oldest (creationTimestamp, then namespace/name)
  wins. Every later route loses that listener; a parentRef left with no listener reports
  Accepted False, reason UnsupportedValue (the spec's generic reason; the message names
  the route that holds the listener), and is not counted in attachedRoutes.
- backendRefs resolve as HTTPRoute's do (``backends.resolve``): only core Services
  (InvalidKind), a cross-namespace Service needs a ReferenceGrant from this route kind
  (RefNotPermitted), a missing Service or port is BackendNotFound; any of those makes
  ResolvedRefs False. The spec wants an invalid backend's share of connections rejected:
  its weight is kept as ``rejected_weight``, which the kernel's table turns into slots
  that refuse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.model.core import Service
from agent.model.gateway import ListenerProtocol
from agent.model.l4route import TCPRoute, UDPRoute
from gatewayapi.attach import (
    L4_PROTOCOLS,
    GatewayState,
    ParentResult,
    attach_gateway,
    is_gateway_ref,
)
from gatewayapi.backends import Grants, RefProblem, resolve
from gatewayapi.precedence import RouteOrder, route_order
from gatewayapi.types import BackendTarget

L4Route = TCPRoute | UDPRoute
TAKEN_REASON = "UnsupportedValue"


@dataclass(frozen=True, slots=True)
class WeightedBackend:
    target: BackendTarget
    weight: int


@dataclass(slots=True)
class L4RouteReport:
    route: L4Route
    backends: list[WeightedBackend]
    """The resolved backendRefs of every rule, in order (invalid ones left out)."""
    refs: list[tuple[RefProblem, str]] = field(default_factory=list)
    """ResolvedRefs problems, in order."""
    rejected_weight: int = 0
    """The weights of the invalid backendRefs: their share of connections is refused."""
    parents: list[ParentResult] = field(default_factory=list)
    """Results for the parentRefs that are Tulle's Gateways, in parentRefs order."""

    def accepted(self, parent: ParentResult) -> bool:
        return parent.attached

    @property
    def order(self) -> RouteOrder:
        meta = self.route.metadata
        return route_order(meta.creation_timestamp, meta.namespace, meta.name)


@dataclass(frozen=True, slots=True)
class L4Listener:
    """One TCP or UDP listener with the route that serves it, as the datapath needs it."""

    gateway: tuple[str, str]
    listener: str
    port: int
    protocol: ListenerProtocol
    route_kind: str
    route: tuple[str, str]
    backends: tuple[WeightedBackend, ...]
    rejected_weight: int = 0


def analyze_l4(
    routes: Iterable[L4Route],
    gateways: Mapping[tuple[str, str], GatewayState],
    services: Mapping[tuple[str, str], Service],
    grants: Grants,
    labels: Mapping[str, Mapping[str, str]],
) -> list[L4RouteReport]:
    """Every route's report, by (namespace, name, kind); listeners already decided."""
    reports = []
    for route in sorted(routes, key=lambda r: (r.metadata.key, r.kind)):
        report = _resolve_backends(route, services, grants)
        for ref in route.spec.parent_refs:
            if not is_gateway_ref(ref):
                continue  # a Service parent (GAMMA) is not served for these kinds
            state = gateways.get((ref.namespace or route.metadata.namespace, ref.name))
            if state is not None:
                report.parents.append(attach_gateway(route, ref, state, labels))
        reports.append(report)
    _one_route_per_listener(reports)
    return reports


def _resolve_backends(
    route: L4Route, services: Mapping[tuple[str, str], Service], grants: Grants
) -> L4RouteReport:
    report = L4RouteReport(route, [])
    for rule in route.spec.rules:
        for ref in rule.backend_refs:
            resolution = resolve(
                group=ref.group,
                kind=ref.kind,
                name=ref.name,
                namespace=ref.namespace,
                port=ref.port,
                route_namespace=route.metadata.namespace,
                services=services,
                grants=grants,
                route_kind=route.kind,
            )
            if resolution.target is None:
                assert resolution.problem is not None
                report.refs.append((resolution.problem, resolution.message))
                report.rejected_weight += ref.weight
            else:
                report.backends.append(WeightedBackend(resolution.target, ref.weight))
    return report


def _one_route_per_listener(reports: list[L4RouteReport]) -> None:
    """The oldest route keeps each listener; the others lose it (module docstring)."""
    holders: dict[tuple[str, str, str], L4RouteReport] = {}
    for report in sorted(reports, key=lambda r: r.order):
        for parent in report.parents:
            lost = []
            for attachment in list(parent.listeners):
                gw = attachment.state.gateway.metadata
                slot = (gw.namespace, gw.name, attachment.state.listener.name)
                holder = holders.setdefault(slot, report)
                if holder is not report:
                    parent.listeners.remove(attachment)
                    meta = holder.route.metadata
                    lost.append(
                        f"listener {slot[2]} of Gateway {gw.namespace}/{gw.name} is served by "
                        f"{holder.route.kind} {meta.namespace}/{meta.name}, which is older (a "
                        f"{attachment.state.listener.protocol} listener forwards by port alone, "
                        "so one route serves it)"
                    )
            if lost and not parent.attached:
                parent.reason, parent.message = TAKEN_REASON, "; ".join(lost)


def served_l4_listeners(reports: Iterable[L4RouteReport]) -> list[L4Listener]:
    """Each programmed TCP or UDP listener that a route serves, in a stable order."""
    out = []
    for report in reports:
        meta = report.route.metadata
        for parent in report.parents:
            for attachment in parent.listeners:
                state = attachment.state
                if not state.programmed or state.listener.protocol not in L4_PROTOCOLS:
                    continue
                gw = state.gateway.metadata
                out.append(
                    L4Listener(
                        (gw.namespace, gw.name),
                        state.listener.name,
                        state.listener.port,
                        state.listener.protocol,
                        report.route.kind,
                        (meta.namespace, meta.name),
                        tuple(report.backends),
                        report.rejected_weight,
                    )
                )
    return sorted(out, key=lambda li: (li.gateway, li.listener))
