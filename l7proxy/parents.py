"""Which parent a redirected connection was for, by its original destination: a Gateway
listener at a Gateway's address, an IngressClass port at the class's address (its
Ingresses' status). Neither ever takes a Service's ClusterIP: that connection is the
Service's."""

from __future__ import annotations

from collections.abc import Sequence

from agent.datapath.l7_needs import cluster_ip_holders, gateway_addresses
from agent.model.core import Namespace, Service
from agent.model.gateway import Gateway
from agent.model.ingress import Ingress, IngressClass
from agent.model.listenerset import ListenerSet
from gatewayapi import GatewayParent, IngressParent, RouteTables
from gatewayapi.ingress.serve import IngressTables, compile_ingresses
from gatewayapi.listenersets import namespace_labels, served_listeners

Address = tuple[str, int]


def gateway_parents(
    gateways: Sequence[Gateway], services: Sequence[Service],
    ingresses: IngressTables | None = None,
    listener_sets: Sequence[ListenerSet] = (), namespaces: Sequence[Namespace] = (),
) -> dict[Address, GatewayParent | IngressParent]:
    """(address, listener port) -> the Gateway listener (or IngressClass port) a
    redirected connection was for. Never a Service's ClusterIP (``gateway_addresses``):
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
