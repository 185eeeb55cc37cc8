"""ClusterFeed: the waypoint's view of the cluster, compiled into route tables on change."""

from __future__ import annotations

from typing import Any

from lightkube import Client

from agent.datapath.policy_waypoint import ConnectionPolicy, connection_policy
from agent.kube.cache import Delta
from agent.kube.source import ClusterSource
from agent.model.cache import ModelCache
from agent.model.core import Service
from gatewayapi import GatewayParent, IngressParent, RouteCompiler, RouteTables, RoutingInputs
from gatewayapi.backendpolicy import targeted_services
from l7proxy.authz import default_routes
from l7proxy.config import StaticEndpoints, tls_certificates
from l7proxy.endpoint_index import EndpointIndex
from l7proxy.parents import gateway_parents, ingress_tables, ingresses_of

Address = tuple[str, int]
Certificates = dict[tuple[str, str], tuple[bytes, bytes]]
KINDS = (
    "Pod",
    "NetworkPolicy",
    "HTTPRoute",
    "GRPCRoute",
    "TLSRoute",
    "Gateway",
    "GatewayClass",
    "ListenerSet",
    "ReferenceGrant",
    "Namespace",
    "Secret",
    "Service",
    "EndpointSlice",
    "BackendTrafficPolicy",
    "AuthorizationPolicy",
    "HTTPFault",
    "HTTPLocalRateLimitPolicy",
    "Ingress",
    "IngressClass",
    "BackendTLSPolicy",
    "ConfigMap",
    "Node",  # Gateways' nodePorts are served at their addresses (l7proxy/parents.py)
)

ROUTING_KINDS = frozenset(
    {"HTTPRoute", "GRPCRoute", "TLSRoute", "Gateway", "GatewayClass", "ListenerSet", "Service",
     "ReferenceGrant",
     "Namespace", "Secret",
     "ConfigMap",  # CAs of Gateways' client-certificate validation (gatewayapi.frontendtls)
     "AuthorizationPolicy",  # default routes for the Services it steers here
     "BackendTrafficPolicy", "HTTPLocalRateLimitPolicy",  # and for those they target
     "HTTPFault",  # what ExtensionRef filters name
     "Ingress", "IngressClass"}
)
POLICY_KINDS = frozenset({"Pod", "Namespace", "NetworkPolicy"})
ENDPOINT_KINDS = ("Service", "EndpointSlice")
Parents = dict[Address, GatewayParent | IngressParent]
Snapshot = tuple[RouteTables, StaticEndpoints, Parents, Certificates, ConnectionPolicy]
H2C = "kubernetes.io/h2c"
"""GEP-1911's appProtocol for HTTP/2 with prior knowledge; ``kubernetes.io/ws`` (WebSocket
over HTTP/1.1) needs nothing here: an Upgrade is spliced on any HTTP/1.1 backend."""


def backend_protocols(services: list[Service]) -> dict[tuple[str, str, int], str]:
    """The Service ports whose appProtocol says h2c (GEP-1911), as ``WaypointConfig.protocols``
    keys (namespace, name, Service port: what a backendRef names): requests to them go out
    as HTTP/2 with prior knowledge, whatever the client spoke."""
    return {(s.metadata.namespace, s.metadata.name, p.port): "h2c"
            for s in services for p in s.spec.ports if p.app_protocol == H2C}


class ClusterFeed:
    """Typed objects from the cluster source, compiled into routing state on change. Each
    part is rebuilt only when a kind it reads changed, and the endpoint map per Service
    (EndpointIndex): an endpoint change costs the work of its Service, not of the cluster."""

    def __init__(self, client: Client, kinds: tuple[str, ...] = KINDS) -> None:
        self.source = ClusterSource(client, kinds, self._on_change)
        self.changed = self.source.changed
        self.compiler = RouteCompiler()
        self.models = {kind: ModelCache() for kind in kinds}
        self.index = EndpointIndex()
        self.typed: dict[str, list[Any]] = {kind: [] for kind in kinds}
        self._dirty: set[str] = set(kinds)  # kinds to decode again in full
        self._reset = True  # the endpoint index starts over (a Service or slice relist)
        self._touched: dict[tuple[str, str, str], None] = {}  # Services, slices: one by one
        self._last: Snapshot | None = None

    def _on_change(self, kind: str, delta: Delta[Any] | None) -> None:
        """Under source.lock: note what changed; snapshot() does the work."""
        if delta is None:  # listed, or relisted
            self._dirty.add(kind)
            if kind in ENDPOINT_KINDS:
                self._dirty.update(ENDPOINT_KINDS)
                self._reset = True
        elif kind in ENDPOINT_KINDS:
            self._touched[(kind, *delta.key)] = None
            if kind == "Service":
                self._dirty.add(kind)  # route tables and Gateway addresses read every Service
        else:
            self._dirty.add(kind)

    def snapshot(self) -> Snapshot:
        with self.source.lock:
            state = self.source.state
            dirty, self._dirty = self._dirty, set()
            reset, self._reset = self._reset, False
            touched, self._touched = self._touched, {}
            listed = {kind: list(state.of_kind(kind)) for kind in dirty}
            one_by_one = [] if reset else [(key, state.get(*key)) for key in touched]
        for kind, objs in listed.items():
            self.typed[kind] = self.models[kind].decode_all(objs, (kind,))
        if reset:
            self.index.reset(self.typed["Service"], self.typed["EndpointSlice"])
        for (kind, ns, name), obj in one_by_one:
            cache = self.models[kind]
            model = None if obj is None else cache.decode(obj)
            if obj is None:
                cache.forget((kind, ns, name))
            if kind == "Service":
                self.index.put_service(model, (ns, name))  # type: ignore[arg-type]
            else:
                self.index.put_slice(model, (ns, name))  # type: ignore[arg-type]
        return self._compile(dirty, reset or bool(touched))

    def _compile(self, dirty: set[str], touched: bool) -> Snapshot:
        typed, last = self.typed, self._last
        if last is None or dirty & ROUTING_KINDS:
            tables = self.compiler.compile(
                RoutingInputs.of(
                    typed["HTTPRoute"] + default_routes(
                        typed["AuthorizationPolicy"], typed["Service"],
                        typed["HTTPRoute"] + typed["GRPCRoute"],
                        targeted_services(
                            typed["BackendTrafficPolicy"] + typed["HTTPLocalRateLimitPolicy"],
                            typed["Service"])),
                    typed["Gateway"],
                    typed["GatewayClass"],
                    typed["Service"],
                    typed["ReferenceGrant"],
                    typed["Namespace"],
                    typed["Secret"],
                    faults=typed["HTTPFault"],
                    grpc_routes=typed["GRPCRoute"],
                    tls_routes=typed["TLSRoute"],
                    listener_sets=typed["ListenerSet"],
                    config_maps=typed["ConfigMap"],
                )
            )
            ingresses = ingress_tables(typed["Ingress"], typed["IngressClass"],
                                       typed["Service"], typed["Gateway"])
            tables = tables.with_ingresses(ingresses)
        else:
            tables = last[0]
        if last is None or touched:
            endpoints = StaticEndpoints(self.index.endpoints())
        else:
            endpoints = last[1]
        if last is None or dirty & {"Gateway", "GatewayClass", "Service", "Ingress",
                                     "IngressClass", "ListenerSet", "Namespace", "Node"}:
            gateways = gateway_parents(typed["Gateway"], typed["Service"], ingresses_of(tables),
                                       typed["ListenerSet"], typed["Namespace"],
                                       typed["GatewayClass"], typed["Node"])
        else:
            gateways = last[2]
        certificates = (
            tls_certificates(typed["Secret"]) if last is None or "Secret" in dirty else last[3]
        )
        if last is None or dirty & POLICY_KINDS:
            policy = connection_policy(typed["Pod"], typed["Namespace"], typed["NetworkPolicy"])
        else:
            policy = last[4]
        self._last = (tables, endpoints, gateways, certificates, policy)
        return self._last
