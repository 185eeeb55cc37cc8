"""A Gateway served at every node's address on its Service's nodePorts (issue 13's fallback,
agent/datapath/gateway_nodeports.py): which ports the datapath sends to the waypoint, which
Gateway listener the waypoint takes such a connection for, and what it never does (a user's
Service of the Gateway's Service name, another class's Gateway, a TCP listener, a
ClusterIP or another Service's port)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from agent.datapath.desired import l7_keys, view_of
from agent.datapath.gateway_nodeports import (
    gateway_node_ports,
    listener_node_ports,
    ports_text,
    waypoint_node_ports,
)
from agent.datapath.planner import Planner
from agent.datapath.services import ServiceKey
from agent.model.convert import from_dict
from gatewayapi import GatewayParent, RouteCompiler
from l7proxy.parents import gateway_parents
from lab.seed import GATEWAY_CLASS

GW_API = "gateway.networking.k8s.io/v1"
NODE1, NODE2 = "10.240.0.11", "10.240.0.12"
HTTP = {"name": "http", "port": 80, "protocol": "HTTP"}
HTTPS = {"name": "https", "port": 443, "protocol": "HTTPS",
         "tls": {"certificateRefs": [{"name": "cert"}]}}
TCP = {"name": "db", "port": 5432, "protocol": "TCP"}
FOREIGN_CLASS = {"apiVersion": GW_API, "kind": "GatewayClass", "metadata": {"name": "other"},
                 "spec": {"controllerName": "example.com/other"}}


def gateway(name: str = "edge", ns: str = "web", cls: str = "tulle",
            listeners: tuple[dict[str, Any], ...] = (HTTP, HTTPS, TCP),
            address: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": GW_API, "kind": "Gateway",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}"},
        "spec": {"gatewayClassName": cls, "listeners": list(listeners)}}
    if address:
        obj["status"] = {"addresses": [{"type": "IPAddress", "value": address}]}
    return obj


def gateway_service(gw: dict[str, Any], owned: bool = True,
                    node_ports: dict[int, int] | None = None) -> dict[str, Any]:
    """The Gateway's Service as the API server serves it (nodePorts assigned)."""
    name, ns = gw["metadata"]["name"], gw["metadata"]["namespace"]
    ports = node_ports if node_ports is not None else {80: 31080, 443: 31443, 5432: 31432}
    meta: dict[str, Any] = {"name": f"tulle-gateway-{name}", "namespace": ns}
    if owned:
        meta["ownerReferences"] = [{"apiVersion": GW_API, "kind": "Gateway", "name": name,
                                    "uid": gw["metadata"]["uid"], "controller": True}]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.40",
                     "ports": [{"name": f"tcp-{p}", "port": p, "protocol": "TCP",
                                "targetPort": p, **({"nodePort": n} if n else {})}
                               for p, n in sorted(ports.items())]}}


def node(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": "10.244.1.0/24" if name == "node1" else "10.244.2.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}


def typed(*docs: dict[str, Any]) -> list[Any]:
    return [from_dict(d) for d in docs]


def by_kind(objs: list[Any], kind: str) -> list[Any]:
    return [o for o in objs if o.kind == kind]


def node_ports_of(*docs: dict[str, Any]) -> dict[str, dict[int, int]]:
    objs = typed(GATEWAY_CLASS, FOREIGN_CLASS, *docs)
    found = gateway_node_ports(by_kind(objs, "Gateway"), by_kind(objs, "GatewayClass"),
                               by_kind(objs, "Service"))
    return {gw.metadata.name: ports for gw, ports in found}


# -- which Gateways have nodePorts -------------------------------------------------------------

def test_a_tulle_gateway_with_its_own_service_has_its_services_node_ports() -> None:
    gw = gateway()
    assert node_ports_of(gw, gateway_service(gw)) == {"edge": {80: 31080, 443: 31443,
                                                                5432: 31432}}


def test_a_users_service_of_the_gateways_service_name_gives_no_node_ports() -> None:
    """Squatting ``tulle-gateway-edge`` (no controller ownerReference with the Gateway's
    uid) never makes the user's nodePorts the Gateway's."""
    gw = gateway()
    assert node_ports_of(gw, gateway_service(gw, owned=False)) == {}


def test_another_classes_gateway_has_no_node_ports() -> None:
    gw = gateway(cls="other")
    assert node_ports_of(gw, gateway_service(gw)) == {}


def test_a_service_without_node_ports_gives_none() -> None:
    gw = gateway()
    assert node_ports_of(gw, gateway_service(gw, node_ports={80: 0})) == {}


def test_only_the_waypoints_listeners_ports_and_only_those_the_service_has() -> None:
    gw = typed(gateway())[0]
    ports = {80: 31080, 443: 31443, 5432: 31432}
    assert waypoint_node_ports(gw, ports) == {80: 31080, 443: 31443}  # not TCP's 5432
    assert listener_node_ports([80, 8443, 80], ports) == [(80, 31080)]
    assert ports_text({443: 31443, 80: 31080}) == "80->31080, 443->31443"


# -- the datapath: this node's address, the nodePort, to the waypoint ------------------------

def test_l7_keys_send_this_nodes_address_and_the_node_ports_to_the_waypoint() -> None:
    gw = gateway()
    view = view_of(typed(NS, GATEWAY_CLASS, gw, gateway_service(gw)))
    node1 = IPv4Address(NODE1)
    keys = l7_keys(view, RouteCompiler(), node1).every
    assert ServiceKey(node1, 31080, 6) in keys and ServiceKey(node1, 31443, 6) in keys
    assert ServiceKey(node1, 31432, 6) not in keys  # a TCP listener: the kernel's, not here
    assert not any(k.vip == IPv4Address(NODE2) for k in keys)  # only this node's address
    assert l7_keys(view, RouteCompiler()).every == frozenset()  # no address known: nothing


def test_with_a_pool_address_too_both_are_served() -> None:
    gw = gateway(address="10.240.0.241")
    view = view_of(typed(NS, GATEWAY_CLASS, gw, gateway_service(gw)))
    keys = l7_keys(view, RouteCompiler(), IPv4Address(NODE1)).every
    assert {ServiceKey(IPv4Address("10.240.0.241"), 80, 6),
            ServiceKey(IPv4Address(NODE1), 31080, 6)} <= keys


def test_a_squatted_service_name_sends_nothing_to_the_waypoint() -> None:
    gw = gateway()
    view = view_of(typed(NS, GATEWAY_CLASS, gw, gateway_service(gw, owned=False)))
    assert l7_keys(view, RouteCompiler(), IPv4Address(NODE1)).every == frozenset()


def test_the_planner_serves_the_node_ports_once_it_knows_its_nodes_address() -> None:
    """The key is an L7 one with no Service entry of its own (the applier flags it
    LB_F_EXTERNAL, so nodeport.h hands it to the waypoint); the Gateway's Service still gets
    no endpoint entry at its nodePort, which would have no backends and drop every client."""
    gw = gateway()
    planner = Planner("node1", waypoint=(IPv4Address("10.244.1.254"), 15001))
    planner.reset(typed(NS, GATEWAY_CLASS, gw, gateway_service(gw)))
    key = ServiceKey(IPv4Address(NODE1), 31080, 6)
    assert key not in planner.desired().l7  # its Node has not arrived: no address yet
    planner.reset(typed(NS, GATEWAY_CLASS, gw, gateway_service(gw), node("node1", NODE1)))
    desired = planner.desired()
    assert key in desired.l7
    assert key not in desired.services.entries


# -- the waypoint: which listener a connection to node address:nodePort was for --------------

def parents(*docs: dict[str, Any]) -> dict[tuple[str, int], object]:
    objs = typed(NS, GATEWAY_CLASS, *docs)
    return gateway_parents(by_kind(objs, "Gateway"), by_kind(objs, "Service"), None, (),
                           by_kind(objs, "Namespace"), by_kind(objs, "GatewayClass"),
                           by_kind(objs, "Node"))


def test_each_nodes_address_at_a_node_port_is_the_gateways_listener() -> None:
    gw = gateway()
    found = parents(gw, gateway_service(gw), node("node1", NODE1), node("node2", NODE2))
    for address in (NODE1, NODE2):
        assert found[(address, 31080)] == GatewayParent("web", "edge", 80)
        assert found[(address, 31443)] == GatewayParent("web", "edge", 443)
        assert (address, 31432) not in found  # TCP listener
        assert (address, 80) not in found  # the listener's own port is not open on nodes
    assert ("10.96.0.40", 31080) not in found  # never the ClusterIP


def test_no_parent_for_a_users_squatting_service_or_another_classes_gateway() -> None:
    gw, foreign = gateway(), gateway(name="them", cls="other")
    found = parents(FOREIGN_CLASS, gw, gateway_service(gw, owned=False), foreign,
                    gateway_service(foreign), node("node1", NODE1))
    assert found == {}
