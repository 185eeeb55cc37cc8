"""Desired datapath state for one node, computed from the cluster view (pure).

The one translation from Kubernetes objects to what the maps should hold, in parts that
each read some kinds (``agent.datapath.planner`` replans them one at a time):

- ``view``: the cluster view (``ClusterView``, ``view_of``);
- ``endpoints_part``: local endpoints with identities and enforcement flags, the ipcache,
  policy entries and the kernel's AuthorizationPolicy verdicts (``plan_endpoints``), and
  where waypoints listen (``waypoint_address``);
- ``services``: the service entries (``plan_services``);
- ``l7_needs``: what must reach a waypoint (``l7_keys``);
- ``l4_routes``: the TCP and UDP listeners TCPRoutes and UDPRoutes serve, as service
  entries beside the Services' (``plan_route_entries``);
- ``mtls_plan``: mTLS enrolment.

This module puts them together (``assemble``, ``desired_datapath``: the whole plan from
scratch, the reference the planner must equal). It re-exports the parts' names that callers
have long imported from here.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.datapath.authz_l4 import AuthzEntry, AuthzKey
from agent.datapath.endpoints_part import (
    EndpointsPart,
    LocalEndpoint,
    node_addresses,
    plan_endpoints,
    waypoint_address,
    waypoint_only,
)
from agent.datapath.external import node_site
from agent.datapath.l4_routes import RouteEntries, merge, plan_route_entries
from agent.datapath.l7_needs import L7Needs, gateway_addresses, l7_keys
from agent.datapath.mtls_plan import MtlsEntry, MtlsKey, plan_mtls
from agent.datapath.policy_plan import (
    CidrKey,
    CidrRule,
    IdentityKey,
    PortRule,
)
from agent.datapath.services import ServiceKey, ServicePlan, plan_services
from agent.datapath.view import ClusterView, view_of
from agent.model.frozen import FrozenMap

__all__ = [
    "ClusterView",
    "DesiredDatapath",
    "EndpointsPart",
    "L7Needs",
    "LocalEndpoint",
    "assemble",
    "desired_datapath",
    "gateway_addresses",
    "l7_keys",
    "mtls_part",
    "node_addresses",
    "plan_endpoints",
    "view_of",
    "waypoint_address",
    "waypoint_only",
]

IPv4 = ipaddress.IPv4Address


@dataclass(frozen=True)
class DesiredDatapath:
    endpoints: Mapping[IPv4, LocalEndpoint] = field(default_factory=dict)
    ipcache: Mapping[IPv4, int] = field(default_factory=dict)
    identity_rules: Mapping[IdentityKey, tuple[PortRule, ...]] = field(default_factory=dict)
    cidr_rules: Mapping[CidrKey, CidrRule] = field(default_factory=dict)
    services: ServicePlan = field(default_factory=ServicePlan)
    l7: frozenset[ServiceKey] = frozenset()  # service ports and Gateway listeners -> waypoint
    l7_some: frozenset[ServiceKey] = frozenset()  # ports only some clients reach via waypoint
    l7_clients: frozenset[tuple[ServiceKey, IPv4]] = frozenset()  # ... and those clients
    waypoint: tuple[IPv4, int] | None = None  # this node's waypoint
    mtls: Mapping[MtlsKey, MtlsEntry] = field(default_factory=dict)  # enrolled pods (mtls_plan)
    authz: Mapping[AuthzKey, tuple[AuthzEntry, ...]] = field(default_factory=dict)  # authz_l4
    errors: tuple[str, ...] = ()
    # The (kind, namespace, name) of the TCPRoute or UDPRoute each served route entry is,
    # so flows through it name the route (agent.datapath.flow_index.endpoint_index).
    l4_routes: Mapping[ServiceKey, tuple[str, str, str]] = field(default_factory=dict)


def mtls_part(part: EndpointsPart, view: ClusterView) -> dict[MtlsKey, MtlsEntry]:
    """mtls_v1's plan: reads ``part``'s pods and ``view``'s namespaces and
    PeerAuthentications."""
    labels = {ns.metadata.name: ns.metadata.labels for ns in view.namespaces}
    return plan_mtls(part.pods, labels, view.peer_authentications)


def assemble(
    part: EndpointsPart,
    services: ServicePlan,
    needs: L7Needs,
    waypoint: tuple[IPv4, int] | None,
    mtls: Mapping[MtlsKey, MtlsEntry] | None = None,
    routes: RouteEntries | None = None,
) -> DesiredDatapath:
    """The desired state from its parts (each computed alone: see agent.datapath.planner)."""
    l4_routes: dict[ServiceKey, tuple[str, str, str]] = {}
    if routes is not None and (routes.entries or routes.errors):
        entries, notes = merge(services.entries.values(), routes)
        l4_routes = {key: route for key, route in routes.routes.items()
                     if entries.get(key) is routes.entries.get(key)}  # not a Service's
        # A plan of its own (generation 0: the applier compares entries, not generations).
        services = ServicePlan(
            FrozenMap(entries), services.errors + routes.errors + tuple(notes), services.site
        )
    l7_clients = frozenset(
        (key, ep.ip)
        for key, namespaces in needs.consumers.items()
        for ep in part.local
        if ep.namespace in namespaces
    )
    return DesiredDatapath(
        endpoints=part.endpoints,
        ipcache=part.ipcache,
        identity_rules=part.identity_rules,
        cidr_rules=part.cidr_rules,
        services=services,
        l7=needs.every,
        l7_some=frozenset(needs.consumers),
        l7_clients=l7_clients,
        waypoint=waypoint,
        mtls=mtls if mtls is not None else {},
        authz=part.authz,
        errors=part.errors + tuple(services.errors) + needs.errors,
        l4_routes=l4_routes,
    )


def desired_datapath(
    view: ClusterView,
    node_name: str,
    previous_services: ServicePlan | None = None,
    l7: L7Needs | None = None,
    waypoint: tuple[IPv4, int] | None = None,
) -> DesiredDatapath:
    """The whole desired state, planned from scratch: the reference that the incremental
    planner (agent.datapath.planner) must always equal.

    ``waypoint``: where this node's waypoint listens, from the agent's own configuration
    (None: no waypoint, L7 services act as L4). Other nodes' waypoints follow
    ``waypoint_address``; every waypoint address gets the waypoint identity."""
    part = plan_endpoints(view, node_name, waypoint)
    return assemble(
        part,
        plan_services(
            view.services, view.slices, previous=previous_services,
            site=node_site(view.nodes, node_name),
        ),
        l7 or L7Needs(),
        waypoint,
        mtls_part(part, view),
        plan_route_entries(view),
    )
