"""Which parent a redirected connection was for, by its original destination: a Gateway
listener at a Gateway's address or at a node's address and its Service's nodePort
(``agent/datapath/gateway_nodeports.py``), an IngressClass port at the class's address (its
Ingresses' status). Neither ever takes a Service's ClusterIP: that connection is the
Service's."""

from __future__ import annotations

from collections.abc import Sequence

from agent.datapath.gateway_nodeports import gateway_node_ports, listener_node_ports
from agent.datapath.l7_needs import KERNEL_PROTOCOLS, cluster_ip_holders, gateway_addresses
from agent.model.core import Namespace, Service
from agent.model.gateway import Gateway, GatewayClass
from agent.model.ingress import Ingress, IngressClass
from agent.model.listenerset import ListenerSet
from agent.model.node import Node
from gatewayapi import GatewayParent, IngressParent, RouteTables
from gatewayapi.ingress.serve import IngressTables, compile_ingresses
from gatewayapi.listenersets import namespace_labels, served_listeners

Address = tuple[str, int]


def gateway_parents(
    gateways: Sequence[Gateway], services: Sequence[Service],
    ingresses: IngressTables | None = None,
    listener_sets: Sequence[ListenerSet] = (), namespaces: Sequence[Namespace] = (),
    classes: Sequence[GatewayClass] = (), nodes: Sequence[Node] = (),
) -> dict[Address, GatewayParent | IngressParent]:
    """(address, listener port) -> the Gateway listener (or IngressClass port) a
    redirected connection was for; and (node InternalIP, nodePort) -> the listener on that
    Service port, for every node (the kernel redirects only its own node's; ``classes``:
    only Tulle's Gateways have them). Never a Service's ClusterIP (``gateway_addresses``):
    that connection is the Service's."""
    out: dict[Address, GatewayParent | IngressParent] = {}
    if ingresses is not None:  # compiled without Service and Gateway addresses
        out.update(ingresses.parents())
    labels = namespace_labels(namespaces)
    for gw, address in gateway_addresses(gateways, services)[0]:
        for listener in served_listeners(gw, listener_sets, labels):
            out[(str(address), listener.port)] = GatewayParent(
                gw.metadata.namespace, gw.metadata.name, listener.port
            )
    node_addresses = sorted({a for n in nodes if (a := n.status.address("InternalIP"))})
    for gw, node_ports in gateway_node_ports(gateways, classes, services):
        ports = [listener.port for listener in served_listeners(gw, listener_sets, labels)
                 if listener.protocol not in KERNEL_PROTOCOLS]
        for port, node_port in listener_node_ports(ports, node_ports):
            parent = GatewayParent(gw.metadata.namespace, gw.metadata.name, port)
            out.update({(address, node_port): parent for address in node_addresses})
    return out


def ingress_tables(
    ingresses: Sequence[Ingress], classes: Sequence[IngressClass],
    services: Sequence[Service], gateways: Sequence[Gateway],
) -> IngressTables:
    """Tulle's IngressClasses, served at their Ingresses' status addresses unless one is
    a Service's ClusterIP or a Gateway's address (the connection is theirs)."""
    taken = set(cluster_ip_holders(services))
    taken.update(a.value for gw in gateways for a in gw.status.addresses)
    return compile_ingresses(ingresses, classes, services, ignored_addresses=frozenset(taken))


def ingresses_of(tables: RouteTables) -> IngressTables | None:
    found = tables.ingresses
    return found if isinstance(found, IngressTables) else None
