"""Resource: the union of every model kind. Each exposes ``.kind`` and ``.metadata``."""

from __future__ import annotations

from typing import TypeAlias

from agent.model.apps import Deployment
from agent.model.authz import AuthorizationPolicy
from agent.model.backendpolicy import BackendTrafficPolicy
from agent.model.backendtls import BackendTLSPolicy
from agent.model.core import ConfigMap, EndpointSlice, Namespace, Pod, Secret, Service
from agent.model.fault import HTTPFault
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import HTTPRoute
from agent.model.ingress import Ingress, IngressClass
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.lbpool import LoadBalancerIPPool
from agent.model.listenerset import ListenerSet
from agent.model.networking import NetworkPolicy
from agent.model.node import Node
from agent.model.peerauth import PeerAuthentication
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from agent.model.tlsroute import TLSRoute

Resource: TypeAlias = (
    Namespace
    | Node
    | Pod
    | Service
    | Secret
    | ConfigMap
    | EndpointSlice
    | Deployment
    | NetworkPolicy
    | Ingress
    | IngressClass
    | GatewayClass
    | Gateway
    | HTTPRoute
    | GRPCRoute
    | TLSRoute
    | TCPRoute
    | UDPRoute
    | ReferenceGrant
    | PeerAuthentication
    | BackendTrafficPolicy
    | AuthorizationPolicy
    | HTTPFault
    | HTTPLocalRateLimitPolicy
    | LoadBalancerIPPool
    | BackendTLSPolicy
    | ListenerSet
)

RESOURCE_CLASSES: tuple[type[Resource], ...] = (
    Namespace,
    Node,
    Pod,
    Service,
    Secret,
    ConfigMap,
    EndpointSlice,
    Deployment,
    NetworkPolicy,
    Ingress,
    IngressClass,
    GatewayClass,
    Gateway,
    HTTPRoute,
    GRPCRoute,
    TLSRoute,
    TCPRoute,
    UDPRoute,
    ReferenceGrant,
    PeerAuthentication,
    BackendTrafficPolicy,
    AuthorizationPolicy,
    HTTPFault,
    HTTPLocalRateLimitPolicy,
    LoadBalancerIPPool,
    BackendTLSPolicy,
    ListenerSet,
)
