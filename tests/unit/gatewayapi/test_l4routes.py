"""TCPRoute and UDPRoute status and what each TCP/UDP listener serves (gatewayapi.l4routes):
attachment by sectionName/port and allowedRoutes (kinds, namespaces), the spec's refusals,
backend resolution with ReferenceGrants, one route per listener (the oldest), and listener
supportedKinds/attachedRoutes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.model.convert import from_dict
from agent.model.l4route import TCPRoute, UDPRoute
from agent.model.resource import Resource
from gatewayapi import compute_status
from gatewayapi.analysis import analyze
from gatewayapi.l4routes import WeightedBackend, served_l4_listeners
from gatewayapi.status import StatusReport
from gatewayapi.types import BackendTarget
from tests.unit.gatewayapi.helpers import (
    GW,
    INFRA,
    T0,
    gateway,
    grant,
    gw_ref,
    inputs,
    listener,
    namespace,
    service,
)

NOW = datetime(2024, 6, 1, tzinfo=UTC)
ALL = {"namespaces": {"from": "All"}}
L4_GATEWAY = gateway(
    listeners=[
        listener("pg", 5432, "TCP", allowed=ALL),
        listener("dns", 53, "UDP", allowed=ALL),
        listener("same", 7000, "TCP"),  # allowedRoutes default: Same namespace
        listener("web", 80, "HTTP", allowed=ALL),
    ]
)


def l4_route(
    kind: str = "TCPRoute",
    name: str = "r",
    ns: str = "default",
    parents: list[dict[str, Any]] | None = None,
    backends: list[dict[str, Any]] | None = None,
    created: str = T0,
) -> TCPRoute | UDPRoute:
    obj = from_dict(
        {
            "apiVersion": GW,
            "kind": kind,
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": {
                "parentRefs": parents if parents is not None else [gw_ref(sectionName="pg")],
                "rules": [{"backendRefs": backends or [{"name": "web", "port": 8080}]}],
            },
        }
    )
    assert isinstance(obj, TCPRoute | UDPRoute)
    return obj


def _status(*objects: Resource) -> StatusReport:
    return compute_status(inputs(L4_GATEWAY, *objects), NOW)


def _conditions(report: StatusReport, kind: str = "TCPRoute", key: str = "default/r",
                index: int = 0) -> dict[str, tuple[str, str]]:
    statuses = report.tcp_routes if kind == "TCPRoute" else report.udp_routes
    entry = statuses[key]["parents"][index]
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def _listener(report: StatusReport, name: str) -> dict[str, Any]:
    listeners = report.gateways[f"{INFRA}/gw"]["listeners"]
    entry: dict[str, Any] = next(ls for ls in listeners if ls["name"] == name)
    return entry


OK = {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}


def test_a_tcp_route_on_a_tcp_listener_is_accepted_and_counted() -> None:
    report = _status(l4_route())
    assert _conditions(report) == OK
    pg = _listener(report, "pg")
    assert pg["attachedRoutes"] == 1
    assert pg["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TCPRoute"}]
    assert _listener(report, "dns")["supportedKinds"] == [
        {"group": "gateway.networking.k8s.io", "kind": "UDPRoute"}
    ]


def test_a_udp_route_on_a_udp_listener_is_accepted() -> None:
    report = _status(l4_route("UDPRoute", parents=[gw_ref(port=53)]))
    assert _conditions(report, "UDPRoute") == OK
    assert _listener(report, "dns")["attachedRoutes"] == 1


REFUSALS: list[tuple[str, Any, dict[str, tuple[str, str]]]] = [
    ("udp route on a tcp listener", l4_route("UDPRoute", parents=[gw_ref(sectionName="pg")]),
     {"Accepted": ("False", "NotAllowedByListeners")}),
    ("tcp route on an http listener", l4_route(parents=[gw_ref(sectionName="web")]),
     {"Accepted": ("False", "NotAllowedByListeners")}),
    ("missing sectionName", l4_route(parents=[gw_ref(sectionName="nope")]),
     {"Accepted": ("False", "NoMatchingParent")}),
    ("missing port", l4_route(parents=[gw_ref(port=6000)]),
     {"Accepted": ("False", "NoMatchingParent")}),
    ("other namespace on a Same listener", l4_route(parents=[gw_ref(sectionName="same")]),
     {"Accepted": ("False", "NotAllowedByListeners")}),
    ("missing backend", l4_route(backends=[{"name": "nope", "port": 8080}]),
     {"ResolvedRefs": ("False", "BackendNotFound")}),
    ("missing backend port", l4_route(backends=[{"name": "web", "port": 9}]),
     {"ResolvedRefs": ("False", "BackendNotFound")}),
    ("backend elsewhere without a grant",
     l4_route(backends=[{"name": "db", "namespace": "data", "port": 5432}]),
     {"ResolvedRefs": ("False", "RefNotPermitted")}),
    ("backend of another kind",
     l4_route(backends=[{"group": "example.com", "kind": "Thing", "name": "x"}]),
     {"ResolvedRefs": ("False", "InvalidKind")}),
]


def test_refusals_carry_the_specs_reasons() -> None:
    for case, route, expected in REFUSALS:
        report = _status(route, service("db", "data", [5432], "10.96.0.40"))
        got = _conditions(report, route.kind)
        assert {k: got[k] for k in expected} == expected, case
        if expected.get("Accepted", ("True",))[0] == "False":
            assert got["ResolvedRefs"] == ("True", "ResolvedRefs"), case
            assert all(ls["attachedRoutes"] == 0 for ls in
                       report.gateways[f"{INFRA}/gw"]["listeners"]), case


def test_a_grant_for_the_route_kind_admits_the_backend() -> None:
    route = l4_route(backends=[{"name": "db", "namespace": "data", "port": 5432}])
    db = service("db", "data", [5432], "10.96.0.40")
    http_only = _status(route, db, grant("data", "default", from_kind="HTTPRoute"))
    assert _conditions(http_only)["ResolvedRefs"] == ("False", "RefNotPermitted")
    granted = _status(route, db, grant("data", "default", from_kind="TCPRoute"))
    assert _conditions(granted) == OK


def test_allowed_routes_kinds_can_refuse_tcproutes() -> None:
    only_udp = gateway(listeners=[
        listener("pg", 5432, "TCP", allowed={**ALL, "kinds": [{"kind": "UDPRoute"}]}),
    ])
    report = compute_status(inputs(only_udp, l4_route()), NOW)
    assert _conditions(report)["Accepted"] == ("False", "NotAllowedByListeners")
    pg = report.gateways[f"{INFRA}/gw"]["listeners"][0]
    assert pg["supportedKinds"] == []
    assert {c["type"]: c["reason"] for c in pg["conditions"]}["ResolvedRefs"] == (
        "InvalidRouteKinds"
    )


def test_the_oldest_route_keeps_a_listener_and_the_next_is_refused() -> None:
    old = l4_route(name="old", created="2024-01-01T00:00:00Z")
    new = l4_route(name="new", created="2024-02-01T00:00:00Z",
                   backends=[{"name": "v1", "port": 8080}])
    report = _status(new, old)
    assert _conditions(report, key="default/old") == OK
    assert _conditions(report, key="default/new")["Accepted"] == ("False", "UnsupportedValue")
    message = report.tcp_routes["default/new"]["parents"][0]["conditions"][0]["message"]
    assert "TCPRoute default/old" in message
    assert _listener(report, "pg")["attachedRoutes"] == 1
    served = served_l4_listeners(analyze(inputs(L4_GATEWAY, new, old)).l4_routes)
    assert [(s.listener, s.route) for s in served] == [("pg", ("default", "old"))]


def test_tcp_and_udp_listeners_share_a_port_number_without_conflict() -> None:
    gw = gateway(listeners=[listener("t", 53, "TCP", allowed=ALL),
                            listener("u", 53, "UDP", allowed=ALL)])
    report = compute_status(inputs(gw), NOW)
    for entry in report.gateways[f"{INFRA}/gw"]["listeners"]:
        assert {c["type"]: c["reason"] for c in entry["conditions"]}["Conflicted"] == (
            "NoConflicts"
        )


def test_served_listeners_carry_weighted_backends_of_every_rule() -> None:
    route = from_dict({
        "apiVersion": GW, "kind": "UDPRoute",
        "metadata": {"name": "dns", "namespace": "default", "creationTimestamp": T0},
        "spec": {"parentRefs": [gw_ref(sectionName="dns")], "rules": [
            {"backendRefs": [{"name": "v1", "port": 8080, "weight": 3},
                             {"name": "gone", "port": 8080, "weight": 5}]},
            {"backendRefs": [{"name": "v2", "port": 8080, "weight": 0}]},
        ]},
    })
    analysis = analyze(inputs(L4_GATEWAY, route, namespace("default")))
    (served,) = served_l4_listeners(analysis.l4_routes)
    assert (served.gateway, served.listener, served.port, served.protocol) == (
        (INFRA, "gw"), "dns", 53, "UDP")
    assert served.backends == (
        WeightedBackend(BackendTarget("default", "v1", 8080), 3),
        WeightedBackend(BackendTarget("default", "v2", 8080), 0),
    )
    assert served.rejected_weight == 5  # "gone": its share is refused, not given to v1


def test_waypoint_tables_never_hold_tcp_or_udp_listeners() -> None:
    from gatewayapi.compile import compile_analysis

    tables = compile_analysis(analyze(inputs(L4_GATEWAY, l4_route())))
    assert {info.name for info in tables.listeners} == {"web"}
