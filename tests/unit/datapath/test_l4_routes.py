"""TCPRoute and UDPRoute in the kernel's service entries (agent/datapath/l4_routes.py) and
weighted Maglev tables (maglev.weighted_maglev_slots): each served (Gateway address,
listener port, protocol) is one entry with the backendRefs' endpoints, each holding a share
of the table within one slot of its weight's; nothing for a port without a listener, a
listener without a route, or a route its listener does not admit (the attacker's case)."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from ipaddress import IPv4Address
from typing import Any

import pytest

from agent.datapath.desired import desired_datapath, l7_keys, view_of
from agent.datapath.flags import LB_F_EXTERNAL
from agent.datapath.l4_routes import plan_route_entries
from agent.datapath.maglev import MAGLEV_SIZE, quotas, weighted_maglev_slots
from agent.datapath.services import Backend, ServiceKey
from agent.model.convert import from_dict
from agent.model.resource import Resource
from gatewayapi import RouteCompiler
from tests.unit.gatewayapi.helpers import INFRA, gateway_class, service

ADDRESS = IPv4Address("10.240.0.241")
ALL = {"namespaces": {"from": "All"}}


def _gateway(listeners: list[dict[str, Any]], address: str | None = str(ADDRESS)) -> Resource:
    doc: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": INFRA},
        "spec": {"gatewayClassName": "tulle", "listeners": listeners},
    }
    if address is not None:
        doc["status"] = {"addresses": [{"type": "IPAddress", "value": address}]}
    return from_dict(doc)


GATEWAY = _gateway([
    {"name": "pg", "port": 5432, "protocol": "TCP", "allowedRoutes": ALL},
    {"name": "dns", "port": 53, "protocol": "UDP", "allowedRoutes": ALL},
    {"name": "own", "port": 7000, "protocol": "TCP"},  # routes from infra only
    {"name": "web", "port": 80, "protocol": "HTTP", "allowedRoutes": ALL},
])


def _route(kind: str, section: str, refs: list[tuple[str, int]], ns: str = "default",
           name: str = "r") -> Resource:
    return from_dict({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": {"parentRefs": [{"name": "gw", "namespace": INFRA, "sectionName": section}],
                 "rules": [{"backendRefs": [{"name": n, "port": 5432, "weight": w}
                                            for n, w in refs]}]},
    })


def _slice(svc: str, ips: list[str], protocol: str = "TCP", ns: str = "default") -> Resource:
    return from_dict({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{svc}-abc", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": "p5432", "port": 15432, "protocol": protocol}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
    })


def _udp_service(name: str) -> Resource:
    return from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.60", "ports": [
            {"name": "p5432", "port": 5432, "protocol": "UDP"}]},
    })


WORLD = (
    gateway_class(), GATEWAY,
    service("a", ports=[5432], cluster_ip="10.96.0.50"),
    service("b", ports=[5432], cluster_ip="10.96.0.51"),
    _slice("a", ["10.244.1.2", "10.244.1.3"]),
    _slice("b", ["10.244.2.2"]),
)


def _shares(table: Any, backends: Any) -> dict[Backend, int]:
    counts = Counter(table)
    return {backends[i]: n for i, n in counts.items()}


# --- weighted Maglev ----------------------------------------------------------------------


@pytest.mark.parametrize("weights", [[1, 1], [3, 1], [90, 10, 0], [1, 2, 3, 4, 5], [1000000, 1]])
def test_weighted_tables_give_each_backend_its_share_within_one_slot(weights: list[int]) -> None:
    names = [f"10.0.0.{i}:80" for i in range(len(weights))]
    table = weighted_maglev_slots(names, [Fraction(w) for w in weights])
    assert len(table) == MAGLEV_SIZE
    counts = Counter(table)
    total = sum(weights)
    for i, weight in enumerate(weights):
        assert abs(counts.get(i, 0) - MAGLEV_SIZE * weight / total) < 1, (i, counts)
        if weight == 0:
            assert i not in counts


def test_weighted_tables_depend_on_the_set_not_the_order() -> None:
    names, weights = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"], [Fraction(w) for w in (5, 3, 1)]
    table = weighted_maglev_slots(names, weights)
    reordered = weighted_maglev_slots(names[::-1], weights[::-1])
    assert [names[i] for i in table] == [names[::-1][i] for i in reordered]


def test_all_weights_zero_is_an_empty_table_and_bad_input_is_refused() -> None:
    assert len(weighted_maglev_slots(["a", "b"], [Fraction(0), Fraction(0)])) == 0
    assert quotas([Fraction(0)]) == [0]
    with pytest.raises(ValueError, match="unique names"):
        weighted_maglev_slots(["a", "a"], [Fraction(1), Fraction(1)])
    with pytest.raises(ValueError, match="prime"):
        weighted_maglev_slots(["a"], [Fraction(1)], size=1000)


# --- entries ------------------------------------------------------------------------------


def test_a_tcp_route_is_one_external_entry_weighted_by_backendref() -> None:
    planned = plan_route_entries(view_of([*WORLD, _route("TCPRoute", "pg", [("a", 3), ("b", 1)])]))
    key = ServiceKey(ADDRESS, 5432, 6)
    assert list(planned.entries) == [key]
    entry = planned.entries[key]
    assert entry.flags == LB_F_EXTERNAL and entry.affinity_timeout == 0
    assert (entry.namespace, entry.name, entry.port_name) == (INFRA, "gw", "pg")
    assert planned.routes[key] == ("TCPRoute", "default", "r")
    shares = _shares(entry.table, entry.backends)
    # a: weight 3 split over 2 endpoints (3/8 each), b: weight 1 on one endpoint (1/4).
    expected = {Backend(IPv4Address("10.244.1.2"), 15432): Fraction(3, 8),
                Backend(IPv4Address("10.244.1.3"), 15432): Fraction(3, 8),
                Backend(IPv4Address("10.244.2.2"), 15432): Fraction(1, 4)}
    assert set(shares) == set(expected)
    for backend, share in expected.items():
        assert abs(shares[backend] - MAGLEV_SIZE * share) < 1


def test_a_udp_route_is_a_udp_entry_and_weight_zero_gets_no_backend() -> None:
    world = [*WORLD, _udp_service("u"), _slice("u", ["10.244.1.9"], "UDP"),
             _route("UDPRoute", "dns", [("u", 1), ("a", 0)])]
    planned = plan_route_entries(view_of(world))
    entry = planned.entries[ServiceKey(ADDRESS, 53, 17)]
    assert list(entry.backends) == [Backend(IPv4Address("10.244.1.9"), 15432)]
    assert set(entry.table) == {0}


def test_a_backend_of_another_protocol_is_left_out_with_a_note() -> None:
    planned = plan_route_entries(view_of([*WORLD, _route("UDPRoute", "dns", [("a", 1)])]))
    entry = planned.entries[ServiceKey(ADDRESS, 53, 17)]
    assert list(entry.backends) == [] and list(entry.table) == []  # refused at once
    assert any("is TCP, not UDP: its share is refused" in e for e in planned.errors)


@pytest.mark.parametrize("refused", ["missing", "empty"])
def test_an_invalid_or_empty_backends_share_is_refused_by_weight(refused: str) -> None:
    # "missing": no such Service (ResolvedRefs False); "empty": a Service without endpoints.
    world = [*WORLD, service("empty", ports=[5432], cluster_ip="10.96.0.52"),
             _route("TCPRoute", "pg", [("b", 1), (refused, 3)])]
    entry = plan_route_entries(view_of(world)).entries[ServiceKey(ADDRESS, 5432, 6)]
    assert list(entry.backends) == [Backend(IPv4Address("10.244.2.2"), 15432)]
    counts = Counter(entry.table)
    assert set(counts) == {0, 1}  # index 1 == len(backends): no backend, the kernel drops
    assert abs(counts[1] - MAGLEV_SIZE * 3 / 4) < 1


NOT_SERVED = [
    ("a listener without a route", []),
    ("a route on a missing listener", [_route("TCPRoute", "nope", [("a", 1)])]),
    ("a tcp route on an http listener", [_route("TCPRoute", "web", [("a", 1)])]),
    ("a udp route on a tcp listener", [_route("UDPRoute", "pg", [("a", 1)])]),
    ("another namespace on a Same listener", [_route("TCPRoute", "own", [("a", 1)])]),
]


@pytest.mark.parametrize(("case", "extra"), NOT_SERVED, ids=[c for c, _ in NOT_SERVED])
def test_what_no_listener_admits_gets_no_entry(case: str, extra: list[Resource]) -> None:
    assert plan_route_entries(view_of([*WORLD, *extra])).entries == {}


def test_the_gateways_own_namespace_is_admitted_on_a_same_listener() -> None:
    route = _route("TCPRoute", "own", [("a", 1, )], ns=INFRA)
    world = [*WORLD, route, service("a", INFRA, [5432], "10.96.0.70"), _slice("a", ["10.244.1.5"],
                                                                              ns=INFRA)]
    assert set(plan_route_entries(view_of(world)).entries) == {ServiceKey(ADDRESS, 7000, 6)}


def test_a_gateway_without_an_address_or_with_a_services_clusterip_is_not_served() -> None:
    route = _route("TCPRoute", "pg", [("a", 1)])
    unaddressed = [gateway_class(), _gateway([{"name": "pg", "port": 5432, "protocol": "TCP",
                                               "allowedRoutes": ALL}], None), *WORLD[2:], route]
    assert plan_route_entries(view_of(unaddressed)).entries == {}
    stolen = [*WORLD, route, service("c", ports=[5432], cluster_ip=str(ADDRESS))]
    assert ServiceKey(ADDRESS, 5432, 6) not in plan_route_entries(view_of(stolen)).entries


def test_tcp_and_udp_listeners_never_go_to_the_waypoint_and_the_plan_holds_the_entry() -> None:
    view = view_of([*WORLD, _route("TCPRoute", "pg", [("a", 1)])])
    needs = l7_keys(view, RouteCompiler())
    assert ServiceKey(ADDRESS, 80, 6) in needs.every  # the HTTP listener still does
    assert ServiceKey(ADDRESS, 5432, 6) not in needs.every
    assert ServiceKey(ADDRESS, 53, 6) not in needs.every
    desired = desired_datapath(view, "n1", None, needs)
    assert desired.services.entries[ServiceKey(ADDRESS, 5432, 6)].port_name == "pg"
    assert ServiceKey(IPv4Address("10.96.0.50"), 5432, 6) in desired.services.entries
