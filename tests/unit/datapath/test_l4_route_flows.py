"""Flows through a Gateway listener a TCPRoute or UDPRoute serves (in the kernel) name that
route in ``tulle.route``, as the waypoint's flows name their HTTPRoute: Hubble's Flow has no
route field (its ``destination_service`` names the Gateway). The name comes from the plan
(``DesiredDatapath.l4_routes``), through the endpoint index, into enrichment and the event
reader's translated flows; a TCP and a UDP listener on one port each name their own route."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

from agent.datapath.desired import desired_datapath, view_of
from agent.datapath.eventreader import EventReader
from agent.datapath.flow_index import endpoint_index
from agent.datapath.flowevents import EventDecoder, FlowEventLayout
from agent.datapath.services import ServiceKey
from agent.flows.enrich import EndpointIndex, enrich
from agent.flows.flow import IP, TCP, UDP, Flow, Service, TulleInfo
from agent.flows.ingest import FlowIngest
from agent.flows.store import FlowRing
from agent.model.convert import from_dict
from agent.model.resource import Resource
from tests.unit.datapath.test_l4_routes import (
    ADDRESS,
    ALL,
    WORLD,
    _gateway,
    _route,
    _slice,
    _udp_service,
)
from tests.unit.gatewayapi.helpers import INFRA, gateway_class, service

GW = str(ADDRESS)


def _index(objects: list[Resource]) -> EndpointIndex:
    view = view_of(objects)
    return endpoint_index(view, desired_datapath(view, "n1"), "n1")


def _route_named(flow: Flow) -> str:
    return flow.tulle.route if flow.tulle is not None else ""


def test_a_flow_to_a_tcp_route_listener_names_the_route_and_the_gateway() -> None:
    index = _index([*WORLD, _route("TCPRoute", "pg", [("a", 1)], name="db")])
    flow = enrich(Flow(ip=IP("10.244.1.9", GW), l4=TCP(40000, 5432)), index)
    assert _route_named(flow) == "default/db"
    assert flow.destination_service == Service("gw", INFRA)
    other_port = enrich(Flow(ip=IP("10.244.1.9", GW), l4=TCP(40000, 80)), index)
    assert _route_named(other_port) == ""
    a_service = enrich(Flow(ip=IP("10.244.1.9", "10.96.0.50"), l4=TCP(40000, 5432)), index)
    assert _route_named(a_service) == ""


def test_tcp_and_udp_listeners_on_one_port_name_their_own_routes() -> None:
    gateway = _gateway([{"name": "t", "port": 53, "protocol": "TCP", "allowedRoutes": ALL},
                        {"name": "dns", "port": 53, "protocol": "UDP", "allowedRoutes": ALL}])
    tcp_dns = from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.50", "ports": [{"name": "p5432", "port": 5432}]}})
    index = _index([gateway_class(), gateway, tcp_dns, _slice("a", ["10.244.1.2"]),
                    _udp_service("u"), _slice("u", ["10.244.1.9"], "UDP"),
                    _route("TCPRoute", "t", [("a", 1)], name="over-tcp"),
                    _route("UDPRoute", "dns", [("u", 1)], name="over-udp")])
    assert _route_named(enrich(Flow(ip=IP("10.244.1.5", GW), l4=TCP(1, 53)), index)) == (
        "default/over-tcp")
    assert _route_named(enrich(Flow(ip=IP("10.244.1.5", GW), l4=UDP(1, 53)), index)) == (
        "default/over-udp")


def test_a_route_named_by_the_producer_is_kept_and_other_tulle_fields_stay() -> None:
    index = _index([*WORLD, _route("TCPRoute", "pg", [("a", 1)], name="db")])
    named = Flow(ip=IP("10.244.1.9", GW), l4=TCP(1, 5432),
                 tulle=TulleInfo(route="shop/web", bytes_sent=7))
    assert _route_named(enrich(named, index)) == "shop/web"
    counted = Flow(ip=IP("10.244.1.9", GW), l4=TCP(1, 5432), tulle=TulleInfo(bytes_sent=7))
    got = enrich(counted, index).tulle
    assert got is not None and (got.route, got.bytes_sent) == ("default/db", 7)


def test_a_listener_a_service_holds_names_no_route() -> None:
    """A Service with the Gateway's address keeps the key (agent.datapath.l4_routes.merge):
    its flows are the Service's and must not name the route that is not served there."""
    stolen = [*WORLD, _route("TCPRoute", "pg", [("a", 1)]),
              service("c", ports=[5432], cluster_ip=GW)]
    view = view_of(stolen)
    desired = desired_datapath(view, "n1")
    assert ServiceKey(ADDRESS, 5432, 6) not in desired.l4_routes
    flow = enrich(Flow(ip=IP("10.244.1.9", GW), l4=TCP(1, 5432)),
                  endpoint_index(view, desired, "n1"))
    assert _route_named(flow) == "" and flow.destination_service == Service("c", "default")


def test_the_plan_records_the_route_of_each_served_key() -> None:
    desired = desired_datapath(view_of([*WORLD, _route("TCPRoute", "pg", [("a", 1)])]), "n1")
    assert desired.l4_routes == {ServiceKey(ADDRESS, 5432, 6): ("TCPRoute", "default", "r")}
    assert desired_datapath(view_of(list(WORLD)), "n1").l4_routes == {}


def _be32(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "little")


def _be16(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), "little")


def test_a_translated_kernel_flow_and_its_reply_name_the_route() -> None:
    """The event reader resolves a translated record by the VIP the client asked for: a
    Gateway listener's flows name the Gateway and the route, the reply too."""
    index = _index([*WORLD, _route("TCPRoute", "pg", [("a", 1)], name="db")])
    ring = FlowRing(10)
    reader = EventReader(EventDecoder("n1"), FlowIngest(ring, ()), lambda: index)
    records = []
    for kind, flags in ((1, 0x02), (4, 0x12)):
        ev = FlowEventLayout()
        ev.ts_ns, ev.saddr, ev.daddr = 1, _be32("10.244.1.9"), _be32("10.244.1.2")
        ev.sport, ev.dport, ev.proto = _be16(40000), _be16(15432), 6
        ev.orig_daddr, ev.orig_dport = _be32(GW), _be16(5432)
        ev.type, ev.verdict, ev.dir, ev.obs_point, ev.tcp_flags = kind, 6, 2, 3, flags
        records.append(bytes(ev))
    assert reader.drain(records) == 2
    flows, _ = ring.snapshot()
    opened, reply = flows
    assert isinstance(opened, Flow) and isinstance(reply, Flow)
    assert opened.destination_service == Service("gw", INFRA)
    assert reply.source_service == Service("gw", INFRA)
    assert _route_named(opened) == _route_named(reply) == "default/db"
    assert IPv4Address(GW) == ADDRESS
