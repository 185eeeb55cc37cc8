"""The desired datapath kept up to date one object change at a time (pure).

``desired_datapath`` plans everything from the whole cluster view; the planner splits that
plan into parts by what they read and replans only the parts a change reaches:

- service entries (``ServiceState``): Service, EndpointSlice; replanned per Service;
- endpoints, ipcache, policy (``plan_endpoints``): Node, Pod, Namespace, NetworkPolicy,
  AuthorizationPolicy (the pods it guards take ingress only from waypoints); replanned whole;
- L7 needs (``l7_keys``): HTTPRoute and the Gateway API kinds, Service, Namespace, Secret,
  AuthorizationPolicy, BackendTrafficPolicy, HTTPLocalRateLimitPolicy, and this node's address
  (Gateways' nodePorts are served there); replanned whole, and skipped while there is none of
  ``STEERING_KINDS``;
- TCPRoute/UDPRoute entries (``plan_route_entries``): those kinds, Gateway API kinds,
  Service, EndpointSlice; replanned whole, skipped while there is no TCPRoute or UDPRoute;
- mTLS enrolment (``mtls_part``): the endpoints part's pods, Namespace, PeerAuthentication;
  replanned whole when one of them changes.

So an EndpointSlice change replans one Service (one Maglev table) and nothing else. While a
first sync's lists arrive, ``prepare`` plans the Services whose objects are in so far, so the
Maglev tables are built while the rest is still on its way (DatapathController.preplan). Parts
that did not change are the very same objects in the next ``DesiredDatapath``, which lets the
applier skip them without comparing. ``desired()`` always equals ``desired_datapath`` over
the same objects (tests/unit/datapath/test_planner.py checks random change sequences).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.datapath.desired import DesiredDatapath, assemble, mtls_part
from agent.datapath.endpoints_part import EndpointsPart, plan_endpoints
from agent.datapath.external import node_site
from agent.datapath.l4_routes import RouteEntries, plan_route_entries
from agent.datapath.l7_needs import L7Needs, l7_keys
from agent.datapath.mtls_plan import MtlsEntry, MtlsKey
from agent.datapath.pod_endpoints import PodMemo
from agent.datapath.service_state import ServiceState
from agent.datapath.services import NodeSite
from agent.datapath.view import ClusterView
from agent.model.core import EndpointSlice, Service
from agent.model.resource import Resource
from identity.spiffe import DEFAULT_TRUST_DOMAIN

if TYPE_CHECKING:  # made on the first route or Gateway (Planner.routes)
    from gatewayapi import RouteCompiler

IPv4 = ipaddress.IPv4Address
Name = tuple[str, str]

VIEW_FIELDS = {  # kind -> ClusterView field
    "Node": "nodes",
    "Namespace": "namespaces",
    "Pod": "pods",
    "Service": "services",
    "EndpointSlice": "slices",
    "NetworkPolicy": "policies",
    "HTTPRoute": "routes",
    "GRPCRoute": "grpc_routes",
    "TCPRoute": "tcp_routes",
    "UDPRoute": "udp_routes",
    "Gateway": "gateways",
    "GatewayClass": "gateway_classes",
    "ListenerSet": "listener_sets",
    "ReferenceGrant": "grants",
    "Secret": "secrets",
    "PeerAuthentication": "peer_authentications",
    "AuthorizationPolicy": "authorization_policies",
    "Ingress": "ingresses",
    "IngressClass": "ingress_classes",
    "BackendTrafficPolicy": "backend_traffic_policies",
    "HTTPLocalRateLimitPolicy": "rate_limit_policies",
}
ENDPOINT_KINDS = frozenset({"Node", "Pod", "Namespace", "NetworkPolicy", "AuthorizationPolicy"})
L7_KINDS = frozenset(
    {
        "HTTPRoute",
        "GRPCRoute",
        "Gateway",
        "GatewayClass",
        "ListenerSet",
        "ReferenceGrant",
        "Secret",
        "Namespace",
        "Service",
        "AuthorizationPolicy",
        "Ingress",
        "IngressClass",
        "BackendTrafficPolicy",  # the Services they target go to the waypoint
        "HTTPLocalRateLimitPolicy",
    }
)
# Without one of these nothing needs a waypoint (``l7_keys`` would find no key).
STEERING_KINDS = ("HTTPRoute", "GRPCRoute", "Gateway", "Ingress", "AuthorizationPolicy",
                  "BackendTrafficPolicy", "HTTPLocalRateLimitPolicy")
# What TCPRoutes and UDPRoutes are served from (agent/datapath/l4_routes.py).
ROUTE_ENTRY_KINDS = frozenset(
    {"TCPRoute", "UDPRoute", "Gateway", "GatewayClass", "ReferenceGrant", "Namespace",
     "Service", "EndpointSlice"}
)
# What the flow enricher's index reads: endpoints, Services, and which TCPRoute or UDPRoute
# serves each Gateway listener (not EndpointSlices: backends never change a name).
INDEX_KINDS = frozenset(
    {"Node", "Pod", "Service", "TCPRoute", "UDPRoute", "Gateway", "GatewayClass", "Namespace"}
)


@dataclass(frozen=True, slots=True)
class Change:
    """One object set (``obj``) or deleted (``obj`` None)."""

    kind: str
    namespace: str
    name: str
    obj: Resource | None


class Planner:
    def __init__(
        self,
        node: str,
        waypoint: tuple[IPv4, int] | None = None,
        routes: RouteCompiler | None = None,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
    ) -> None:
        self.node = node
        self.trust_domain = trust_domain  # of the principals AuthorizationPolicies name
        self.waypoint = waypoint
        self._routes = routes
        self.objects: dict[str, dict[Name, Any]] = {kind: {} for kind in VIEW_FIELDS}
        self.services = ServiceState()
        self.services.set_site(NodeSite())  # unknown until its Node arrives (desired_datapath)
        self._part: EndpointsPart | None = None
        self._pod_memo: PodMemo = {}  # per-Pod work of the last endpoints part
        self._needs: L7Needs | None = None
        self._mtls: dict[MtlsKey, MtlsEntry] | None = None
        self._route_entries: RouteEntries | None = None
        self._view: ClusterView | None = None
        self._desired: DesiredDatapath | None = None
        self.index_stale = True  # the enricher's index must be rebuilt from view()

    @property
    def routes(self) -> RouteCompiler:
        """The route compiler, imported and made when the first route or Gateway needs it
        (~30 ms of imports a cluster without them never pays)."""
        if self._routes is None:
            from gatewayapi import RouteCompiler

            self._routes = RouteCompiler()
        return self._routes

    def reset(self, resources: Iterable[Resource]) -> None:
        """Start over from a full list of objects (a resync). It becomes the deltas from
        what the planner holds: the same Python object (an unchanged resourceVersion, from
        agent.model.cache) is no change, so a resync replans only what changed."""
        fresh: dict[str, dict[Name, Any]] = {kind: {} for kind in VIEW_FIELDS}
        for res in resources:
            bucket = fresh.get(res.kind)
            if bucket is not None:
                meta = res.metadata
                bucket[(meta.namespace, meta.name)] = res
        for kind, objects in fresh.items():
            held = self.objects[kind]
            for name in [name for name in held if name not in objects]:
                self._put(kind, name, None)
            for name, obj in objects.items():
                if held.get(name) is not obj:
                    self._put(kind, name, obj)
        self.index_stale = True

    def update(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self._put(change.kind, (change.namespace, change.name), change.obj)

    def prepare(self) -> int:
        """Plan ahead what the changes so far allow (``ServiceState.prepare``: the Services
        that have their EndpointSlices), so that ``desired`` has less left to do; it is the
        same with or without. Returns how many Services it planned."""
        return self.services.prepare()

    def _put(self, kind: str, name: Name, obj: Resource | None) -> None:
        """Set (or with None, delete) one object; what depends on its kind is planned again."""
        bucket = self.objects.get(kind)
        if bucket is None:
            return  # a kind the datapath does not read
        if obj is None:
            if bucket.pop(name, None) is None:
                return
        else:
            bucket[name] = obj
        self._view = self._desired = None
        if kind == "Node" and name[1] == self.node:
            before = self.services.site
            self.services.set_site(node_site(self.objects["Node"].values(), self.node))
            if self.services.site != before:
                self._needs = None  # Gateways' nodePorts are served at this node's address
        if kind == "Service":
            assert obj is None or isinstance(obj, Service)
            self.services.put_service(obj, name)
        elif kind == "EndpointSlice":
            assert obj is None or isinstance(obj, EndpointSlice)
            self.services.put_slice(obj, name)
        if kind in ENDPOINT_KINDS:
            self._part = self._mtls = None
        if kind == "PeerAuthentication":
            self._mtls = None
        if kind in L7_KINDS:
            self._needs = None
        if kind in ROUTE_ENTRY_KINDS:
            self._route_entries = None
        if kind in INDEX_KINDS:
            self.index_stale = True

    def view(self) -> ClusterView:
        """Every object, grouped by kind (built on demand: O(cluster))."""
        if self._view is None:
            self._view = ClusterView(
                **{f: tuple(self.objects[kind].values()) for kind, f in VIEW_FIELDS.items()}
            )
        return self._view

    def desired(self) -> DesiredDatapath:
        if self._desired is not None:
            return self._desired
        if self._part is None:
            self._part = plan_endpoints(
                self._endpoint_view(), self.node, self.waypoint, self._pod_memo,
                self.trust_domain,
            )
        if self._needs is None:
            self._needs = self._l7()
        if self._mtls is None:
            self._mtls = mtls_part(self._part, self._mtls_view())
        if self._route_entries is None:
            self._route_entries = self._l4_routes()
        self._desired = assemble(
            self._part, self.services.plan(), self._needs, self.waypoint, self._mtls,
            self._route_entries,
        )
        return self._desired

    def _endpoint_view(self) -> ClusterView:
        return ClusterView(
            nodes=tuple(self.objects["Node"].values()),
            namespaces=tuple(self.objects["Namespace"].values()),
            pods=tuple(self.objects["Pod"].values()),
            policies=tuple(self.objects["NetworkPolicy"].values()),
            authorization_policies=tuple(self.objects["AuthorizationPolicy"].values()),
        )

    def _mtls_view(self) -> ClusterView:
        return ClusterView(
            namespaces=tuple(self.objects["Namespace"].values()),
            peer_authentications=tuple(self.objects["PeerAuthentication"].values()),
        )

    def _l4_routes(self) -> RouteEntries:
        if not (self.objects["TCPRoute"] or self.objects["UDPRoute"]):
            return RouteEntries()  # the common case: no O(cluster) view built
        return plan_route_entries(self.view())

    def _l7(self) -> L7Needs:
        if not any(self.objects[kind] for kind in STEERING_KINDS):
            return L7Needs()  # nothing can need a waypoint: skip the O(Services) compile
        site = self.services.site
        return l7_keys(self.view(), self.routes, site.address if site is not None else None)
