"""A Gateway's nodePorts (pure): where each of Tulle's Gateways is served on the nodes'
addresses, as the nodePorts of its own Service of type LoadBalancer.

The fallback of issue 13: a Gateway gets its address through that Service (LoadBalancer
IPAM, ``controlplane/lbipam``); on a cluster with no pool for it (none, exhausted, or it
asks for an address no pool holds) it has none. Its Service still has a ``nodePort`` per
listener port (the API server gives every port of a LoadBalancer Service one,
``allocateLoadBalancerNodePorts`` defaulting to true), and as kube-proxy serves a
LoadBalancer Service's nodePorts whether or not it got an address, Tulle serves the
Gateway's: ``node address:nodePort`` goes to the Gateway's listener on that port, through
the waypoint, exactly as the Gateway's own address does (same routes, same NetworkPolicy
judgement of the outside client, ``l7proxy/parents.py``). Served with or without an
address, so a client that used the nodePort is not cut off when an address arrives later,
and nothing flips when a pool fills or empties.

What this does not do: report node addresses in the Gateway's ``status.addresses``. Gateway
API reads an address there as serving the listeners' own ports (the conformance suite dials
``address:listener port``), which a node address does not; Istio, too, reports only the
Service's addresses, never nodes'. The Gateway keeps ``Programmed: False``, reason
``AddressNotAssigned``, and the message names the nodePorts (``lab/controllers/gateways.py``).

Only HTTP, HTTPS and TLS listeners (the waypoint's); TCP and UDP listeners, which the kernel
serves at the Gateway's address (``agent/datapath/l4_routes.py``), get no nodePort entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from agent.model.core import Service
from agent.model.gateway import Gateway, GatewayClass, ListenerProtocol
from agent.model.gateway_service import is_service_of, service_name
from agent.model.meta import Protocol


def service_node_ports(service: Service) -> dict[int, int]:
    """TCP port -> nodePort of a Service (ports without a nodePort left out)."""
    return {p.port: p.node_port for p in service.spec.ports
            if p.protocol is Protocol.TCP and p.node_port}


def gateway_node_ports(
    gateways: Iterable[Gateway], classes: Iterable[GatewayClass], services: Iterable[Service]
) -> list[tuple[Gateway, dict[int, int]]]:
    """Each Gateway of a Tulle GatewayClass that has its own Service (its controller
    ownerReference, ``is_service_of``: never a user's Service of that name), with that
    Service's TCP port -> nodePort; in (namespace, name) order."""
    from gatewayapi.types import CONTROLLER_NAME  # lazily: gatewayapi costs ~30 ms to import

    ours = {c.metadata.name for c in classes if c.spec.controller_name == CONTROLLER_NAME}
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in services}
    out: list[tuple[Gateway, dict[int, int]]] = []
    for gw in sorted(gateways, key=lambda g: g.metadata.key):
        if gw.spec.gateway_class_name not in ours:
            continue
        svc = by_name.get((gw.metadata.namespace, service_name(gw.metadata.name)))
        if svc is None or not is_service_of(svc, gw):
            continue
        ports = service_node_ports(svc)
        if ports:
            out.append((gw, ports))
    return out


def listener_node_ports(
    listener_ports: Sequence[int], node_ports: Mapping[int, int]
) -> list[tuple[int, int]]:
    """(listener port, nodePort) for each listener port its Service has a nodePort for (a
    ListenerSet's port the Service does not carry has none)."""
    return [(port, node_ports[port]) for port in sorted(set(listener_ports)) if port in node_ports]


def waypoint_node_ports(gateway: Gateway, node_ports: Mapping[int, int]) -> dict[int, int]:
    """``node_ports`` narrowed to the ports of the Gateway's own listeners the waypoint serves
    (not TCP nor UDP ones): what the status may say is served at the nodes."""
    ports = [listener.port for listener in gateway.spec.listeners
             if listener.protocol not in (ListenerProtocol.TCP, ListenerProtocol.UDP)]
    return dict(listener_node_ports(ports, node_ports))


def ports_text(node_ports: Mapping[int, int]) -> str:
    """``80->31080, 443->31443``: listener port -> nodePort, for status messages."""
    return ", ".join(f"{port}->{node_ports[port]}" for port in sorted(node_ports))
