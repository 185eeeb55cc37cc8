"""The cluster view the datapath plans from (pure): the typed objects of the kinds it reads
(``agent.datapath.kinds.WATCHED_KINDS``), grouped by kind."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agent.model.authz import AuthorizationPolicy
from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.core import EndpointSlice, Namespace, Pod, Secret, Service
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.ingress import Ingress, IngressClass
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.listenerset import ListenerSet
from agent.model.networking import NetworkPolicy
from agent.model.node import Node
from agent.model.peerauth import PeerAuthentication
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from agent.model.resource import Resource


@dataclass(frozen=True)
class ClusterView:
    """Typed objects the datapath cares about (already converted from the store)."""

    nodes: tuple[Node, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    grpc_routes: tuple[GRPCRoute, ...] = ()
    tcp_routes: tuple[TCPRoute, ...] = ()
    udp_routes: tuple[UDPRoute, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    gateway_classes: tuple[GatewayClass, ...] = ()
    listener_sets: tuple[ListenerSet, ...] = ()
    grants: tuple[ReferenceGrant, ...] = ()
    secrets: tuple[Secret, ...] = ()
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    backend_traffic_policies: tuple[BackendTrafficPolicy, ...] = ()  # steer what they target
    rate_limit_policies: tuple[HTTPLocalRateLimitPolicy, ...] = ()  # (enforced in the waypoint)
    ingresses: tuple[Ingress, ...] = ()
    ingress_classes: tuple[IngressClass, ...] = ()


def view_of(resources: Iterable[Resource]) -> ClusterView:
    """Group decoded objects by kind."""
    buckets: dict[str, list[Any]] = {}
    for res in resources:
        buckets.setdefault(res.kind, []).append(res)
    return ClusterView(
        nodes=tuple(buckets.get("Node", ())),
        namespaces=tuple(buckets.get("Namespace", ())),
        pods=tuple(buckets.get("Pod", ())),
        services=tuple(buckets.get("Service", ())),
        slices=tuple(buckets.get("EndpointSlice", ())),
        policies=tuple(buckets.get("NetworkPolicy", ())),
        routes=tuple(buckets.get("HTTPRoute", ())),
        grpc_routes=tuple(buckets.get("GRPCRoute", ())),
        tcp_routes=tuple(buckets.get("TCPRoute", ())),
        udp_routes=tuple(buckets.get("UDPRoute", ())),
        gateways=tuple(buckets.get("Gateway", ())),
        gateway_classes=tuple(buckets.get("GatewayClass", ())),
        listener_sets=tuple(buckets.get("ListenerSet", ())),
        grants=tuple(buckets.get("ReferenceGrant", ())),
        secrets=tuple(buckets.get("Secret", ())),
        peer_authentications=tuple(buckets.get("PeerAuthentication", ())),
        authorization_policies=tuple(buckets.get("AuthorizationPolicy", ())),
        backend_traffic_policies=tuple(buckets.get("BackendTrafficPolicy", ())),
        rate_limit_policies=tuple(buckets.get("HTTPLocalRateLimitPolicy", ())),
        ingresses=tuple(buckets.get("Ingress", ())),
        ingress_classes=tuple(buckets.get("IngressClass", ())),
    )
