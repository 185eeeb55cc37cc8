"""What must reach a waypoint (pure): the Service ports and Gateway listeners the datapath
redirects to the node's waypoint, for HTTPRoutes, GRPCRoutes, AuthorizationPolicy,
BackendTrafficPolicy, HTTPLocalRateLimitPolicy, Gateways and Ingress classes (``l7_keys``),
and the Gateway addresses that are their Gateway's alone (``gateway_addresses``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.datapath.services import ServiceKey
from agent.datapath.view import ClusterView
from agent.model.core import Service
from agent.model.gateway import Gateway, ListenerProtocol
from agent.model.ingress import Ingress, IngressClass
from agent.model.meta import Protocol
from authz.steer import steered_services

if TYPE_CHECKING:  # imported by l7_keys: a cluster without routes never compiles any
    from gatewayapi import RouteCompiler

IPv4 = ipaddress.IPv4Address
KERNEL_PROTOCOLS = (ListenerProtocol.TCP, ListenerProtocol.UDP)
"""Listeners whose routes the kernel serves: never redirected to a waypoint."""


@dataclass(frozen=True)
class L7Needs:
    """``every``: Service ports and Gateway listeners whose every client goes to the
    waypoint. ``consumers``: Service ports with only consumer routes, and the namespaces
    whose pods go to the waypoint for them (the rest stay plain L4)."""

    every: frozenset[ServiceKey] = frozenset()
    consumers: Mapping[ServiceKey, frozenset[str]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def l7_keys(view: ClusterView, compiler: RouteCompiler, node_address: IPv4 | None = None
            ) -> L7Needs:
    """What must reach a waypoint: Service ports with HTTPRoutes or GRPCRoutes (GAMMA;
    consumer routes only for clients in their namespace), the TCP ports of Services under an
    AuthorizationPolicy (``authz.steer``), a BackendTrafficPolicy or an
    HTTPLocalRateLimitPolicy (``targeted_services``; the waypoint enforces them all), and
    every listener but TCP and UDP ones (``KERNEL_PROTOCOLS``) of Gateways with an address,
    the same listeners at ``node_address`` (this node's) and their Service's nodePorts
    (``agent/datapath/gateway_nodeports.py``), and ports 80/443 of Tulle's IngressClasses'
    addresses."""
    from gatewayapi import RoutingInputs
    from gatewayapi.backendpolicy import targeted_services
    from gatewayapi.listenersets import namespace_labels, served_listeners

    tables = compiler.compile(
        RoutingInputs.of(
            view.routes,
            view.gateways,
            view.gateway_classes,
            view.services,
            view.grants,
            view.namespaces,
            view.secrets,
            grpc_routes=view.grpc_routes,
        )
    )
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in view.services}
    keys: set[ServiceKey] = set()
    consumers: dict[ServiceKey, frozenset[str]] = {}
    for parent in tables.l7_services():
        svc = by_name.get((parent.namespace, parent.name))
        vip = _ipv4_or_none(svc.spec.cluster_ip) if svc is not None else None
        if vip is not None:  # an IPv6 ClusterIP is not load-balanced (plan_services notes it)
            key = ServiceKey(vip, parent.port, 6)
            namespaces = tables.l7_client_namespaces(parent)
            if namespaces is None:
                keys.add(key)
            elif namespaces:
                consumers[key] = namespaces
    steered = steered_services(view.authorization_policies, view.services) | targeted_services(
        (*view.backend_traffic_policies, *view.rate_limit_policies), view.services
    )
    for namespace, name in sorted(steered):
        svc = by_name[(namespace, name)]
        vip = _ipv4_or_none(svc.spec.cluster_ip)
        if vip is not None:
            keys.update(
                ServiceKey(vip, p.port, 6) for p in svc.spec.ports if p.protocol is Protocol.TCP
            )
    usable, errors = gateway_addresses(view.gateways, view.services)
    labels = namespace_labels(view.namespaces)
    for gw, address in usable:
        for listener in served_listeners(gw, view.listener_sets, labels):
            if listener.protocol not in KERNEL_PROTOCOLS:  # TCP/UDP: agent/datapath/l4_routes
                keys.add(ServiceKey(address, listener.port, 6))
    if node_address is not None:
        keys.update(node_port_keys(view, node_address))
    if view.ingresses:
        taken = frozenset(cluster_ip_holders(view.services)) | {str(a) for _, a in usable}
        keys.update(ingress_keys(view.ingresses, view.ingress_classes, taken))
    return L7Needs(
        frozenset(keys), {k: v for k, v in consumers.items() if k not in keys}, tuple(errors)
    )


def node_port_keys(view: ClusterView, node_address: IPv4) -> set[ServiceKey]:
    """(this node's address, nodePort) of each waypoint listener of Tulle's Gateways."""
    from agent.datapath.gateway_nodeports import gateway_node_ports, listener_node_ports
    from gatewayapi.listenersets import namespace_labels, served_listeners

    labels = namespace_labels(view.namespaces)
    keys: set[ServiceKey] = set()
    for gw, node_ports in gateway_node_ports(view.gateways, view.gateway_classes, view.services):
        ports = [listener.port for listener in served_listeners(gw, view.listener_sets, labels)
                 if listener.protocol not in KERNEL_PROTOCOLS]
        keys.update(ServiceKey(node_address, node_port, 6)
                    for _, node_port in listener_node_ports(ports, node_ports))
    return keys


def cluster_ip_holders(services: Iterable[Service]) -> dict[str, str]:
    """ClusterIP -> the Service (namespace/name) holding it."""
    return {
        s.spec.cluster_ip: s.metadata.key
        for s in services
        if s.spec.cluster_ip not in (None, "", "None")
    }


def ingress_keys(
    ingresses: Iterable[Ingress], classes: Iterable[IngressClass], taken: frozenset[str]
) -> set[ServiceKey]:
    """Ports 80 and 443 of the addresses of Tulle's IngressClasses (their Ingresses'
    status), except an address that is a Service's or a Gateway's (``taken``)."""
    from gatewayapi.ingress.classes import class_addresses
    from gatewayapi.ingress.serve import PORTS

    keys: set[ServiceKey] = set()
    for addresses in class_addresses(ingresses, classes, ignored=taken).values():
        for text in addresses:
            address = _ipv4_or_none(text)
            if address is not None:
                keys.update(ServiceKey(address, port, 6) for port in PORTS)
    return keys


def _ipv4_or_none(text: str | None) -> IPv4 | None:
    try:
        return IPv4(text) if text not in (None, "", "None") else None
    except ValueError:
        return None


def gateway_addresses(
    gateways: Iterable[Gateway], services: Iterable[Service]
) -> tuple[list[tuple[Gateway, IPv4]], list[str]]:
    """Each Gateway's addresses that are its alone. An address that is also a Service's
    ClusterIP stays the Service's: a Gateway (perhaps another namespace's) that shared it
    would capture the Service's connections for its own routes."""
    cluster_ips = cluster_ip_holders(services)
    usable, errors = [], []
    for gw in sorted(gateways, key=lambda g: g.metadata.key):  # errors in one order
        for address in gw.status.addresses:
            holder = cluster_ips.get(address.value)
            if holder is not None:
                errors.append(
                    f"Gateway {gw.metadata.key}: address {address.value} is the ClusterIP of "
                    f"Service {holder}: not programmed (the Service keeps it)"
                )
                continue
            try:
                usable.append((gw, IPv4(address.value)))
            except ValueError:
                continue
    return usable, errors
