"""Parents: Gateway listeners (sectionName, port, allowedRoutes, hostnames, isolation)
and GAMMA Service parents (ports, producer and consumer routes)."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayapi import GatewayParent, NoRoute, NoRouteReason, ServiceParent
from gatewayapi.hostnames import effective_hostnames, intersect, matches
from tests.unit.gatewayapi.helpers import (
    INFRA,
    backend,
    gateway,
    gateway_class,
    grant,
    gw_ref,
    listener,
    namespace,
    picked,
    route,
    select,
    service,
    svc_ref,
    tables,
)

ALL = {"namespaces": {"from": "All"}}

# --- hostnames ---------------------------------------------------------------------------

# Spec: Listener.hostname / HTTPRouteSpec.hostnames: "*.example.com" is a suffix match of
# at least one label: test.example.com and foo.test.example.com, not example.com.
WILDCARD = [
    ("*.example.com", "test.example.com", True),
    ("*.example.com", "foo.test.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "badexample.com", False),
    ("foo.example.com", "foo.example.com", True),
    ("foo.example.com", "bar.example.com", False),
    (None, "anything.at.all", True),
]


@pytest.mark.parametrize(("pattern", "host", "hit"), WILDCARD)
def test_wildcard_matching(pattern: str | None, host: str, hit: bool) -> None:
    assert matches(pattern, host) is hit


# Spec: HTTPRouteSpec.hostnames examples: a listener "test.example.com" takes routes with
# no hostnames, "test.example.com" or "*.example.com"; a listener "*.example.com" takes
# "*.example.com", "test.example.com", "foo.test.example.com", not "example.com" nor
# "test.example.net".
INTERSECT = [
    ("test.example.com", "test.example.com", "test.example.com"),
    ("test.example.com", "*.example.com", "test.example.com"),
    ("test.example.com", "other.example.com", None),
    ("*.example.com", "*.example.com", "*.example.com"),
    ("*.example.com", "test.example.com", "test.example.com"),
    ("*.example.com", "foo.test.example.com", "foo.test.example.com"),
    ("*.example.com", "example.com", None),
    ("*.example.com", "test.example.net", None),
    ("*.example.com", "*.foo.example.com", "*.foo.example.com"),
    ("*.foo.example.com", "*.example.com", "*.foo.example.com"),
    (None, "*.example.com", "*.example.com"),
]


@pytest.mark.parametrize(("listener_host", "route_host", "served"), INTERSECT)
def test_hostname_intersection(
    listener_host: str | None, route_host: str, served: str | None
) -> None:
    assert intersect(listener_host, route_host) == served


def test_non_matching_route_hostnames_are_ignored() -> None:
    # Spec: listener "*.example.com", route ["test.example.com", "test.example.net"]:
    # test.example.net must not be considered.
    assert effective_hostnames("*.example.com", ("test.example.com", "test.example.net")) == [
        ("test.example.com", (1, 16))
    ]


def test_route_hostnames_filter_requests() -> None:
    t = tables(route("r", hostnames=("foo.example.com", "*.bar.com")))
    assert picked(t, host="foo.example.com") == "default/r#0"
    assert picked(t, host="foo.example.com:8080") == "default/r#0"  # port ignored
    assert picked(t, host="FOO.example.com") == "default/r#0"
    assert picked(t, host="x.bar.com") == "default/r#0"
    assert picked(t, host="bar.com") is None
    assert picked(t, host="other.example.com") is None


# --- listener isolation and selection ----------------------------------------------------

ISOLATION_GW = gateway(
    listeners=[
        listener("empty", hostname=None, allowed=ALL),
        listener("wild", hostname="*.example.com", allowed=ALL),
        listener("wild-foo", hostname="*.foo.example.com", allowed=ALL),
        listener("exact", hostname="abc.foo.example.com", allowed=ALL),
    ]
)


def _isolation_tables() -> Any:
    routes = [
        route(
            name,
            parents=[gw_ref(sectionName=name)],
            rules=[{"matches": [{"path": {"value": f"/{name}"}}], "backendRefs": [backend("web")]}],
        )
        for name in ("empty", "wild", "wild-foo", "exact")
    ]
    return tables(ISOLATION_GW, *routes)


# Spec (GatewaySpec.listeners, "General Listener behavior"; conformance
# GatewayHTTPListenerIsolation): a request is routed only by the most specific listener
# whose hostname matches, exact before wildcard before empty, longer wildcard first.
ISOLATION = [
    ("bar.com", "/empty", "default/empty#0"),
    ("bar.com", "/wild", None),
    ("bar.example.com", "/wild", "default/wild#0"),
    ("bar.example.com", "/empty", None),
    ("bar.foo.example.com", "/wild-foo", "default/wild-foo#0"),
    ("bar.foo.example.com", "/wild", None),
    ("abc.foo.example.com", "/exact", "default/exact#0"),
    ("abc.foo.example.com", "/wild-foo", None),
]


@pytest.mark.parametrize(("host", "path", "winner"), ISOLATION)
def test_listener_isolation(host: str, path: str, winner: str | None) -> None:
    assert picked(_isolation_tables(), path, host=host) == winner


def test_no_matching_listener_is_404() -> None:
    gw = gateway(listeners=[listener(hostname="only.example.com", allowed=ALL)])
    found = select(tables(gw, route("r")), host="other.example.com")
    assert isinstance(found, NoRoute) and found.reason is NoRouteReason.NO_MATCHING_LISTENER
    assert found.status == 404


def test_unknown_parent_and_unmatched_rule() -> None:
    t = tables(
        route(
            "r", rules=[{"matches": [{"path": {"value": "/x"}}], "backendRefs": [backend("web")]}]
        )
    )
    other = select(t, parent=GatewayParent(INFRA, "nope", 80))
    assert isinstance(other, NoRoute) and other.reason is NoRouteReason.UNKNOWN_PARENT
    miss = select(t, "/y")
    assert isinstance(miss, NoRoute) and miss.reason is NoRouteReason.NO_MATCHING_RULE


# --- sectionName, port, allowedRoutes -----------------------------------------------------

TWO_PORTS = gateway(
    listeners=[listener("http", 80, allowed=ALL), listener("alt", 8080, allowed=ALL)]
)

# Spec: ParentReference.sectionName selects a listener by name, port by port; both must
# match when both are set; neither means every listener.
SECTION = [
    ({}, {80, 8080}),
    ({"sectionName": "http"}, {80}),
    ({"sectionName": "alt"}, {8080}),
    ({"port": 8080}, {8080}),
    ({"sectionName": "http", "port": 80}, {80}),
    ({"sectionName": "http", "port": 8080}, set()),
    ({"sectionName": "missing"}, set()),
]


@pytest.mark.parametrize(("ref", "ports"), SECTION)
def test_section_name_and_port(ref: dict[str, Any], ports: set[int]) -> None:
    t = tables(TWO_PORTS, route("r", parents=[gw_ref(**ref)]))
    served = {p for p in (80, 8080) if picked(t, parent=GatewayParent(INFRA, "gw", p))}
    assert served == ports


def _allowed(allowed: dict[str, Any]) -> Any:
    return gateway(listeners=[listener(allowed=allowed)])


# Spec: AllowedRoutes.namespaces.from: Same (default), All, Selector (namespace labels;
# kubernetes.io/metadata.name is always set); AllowedRoutes.kinds.
ALLOWED = [
    ({}, INFRA, True),
    ({}, "default", False),
    ({"namespaces": {"from": "Same"}}, "default", False),
    ({"namespaces": {"from": "All"}}, "default", True),
    (
        {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}},
        "team-a",
        True,
    ),
    (
        {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "a"}}}},
        "team-b",
        False,
    ),
    (
        {
            "namespaces": {
                "from": "Selector",
                "selector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
            }
        },
        "team-b",
        True,
    ),
    ({"namespaces": {"from": "All"}, "kinds": [{"kind": "HTTPRoute"}]}, "default", True),
    ({"namespaces": {"from": "All"}, "kinds": [{"kind": "GRPCRoute"}]}, "default", False),
]


@pytest.mark.parametrize(("allowed", "route_ns", "attached"), ALLOWED)
def test_allowed_routes(allowed: dict[str, Any], route_ns: str, attached: bool) -> None:
    t = tables(
        _allowed(allowed),
        namespace("team-a", {"team": "a"}),
        namespace("team-b", {"team": "b"}),
        service("web", namespace=route_ns),
        route("r", namespace=route_ns),
    )
    assert (picked(t) is not None) is attached


def test_gateway_of_another_controller_is_ignored() -> None:
    t = tables(
        gateway_class(),
        gateway_class("other", controller="example.com/other"),
        gateway(class_name="other"),
        route("r"),
    )
    assert isinstance(select(t), NoRoute)


def test_https_listener_without_valid_certificate_is_not_served() -> None:
    gw = gateway(
        listeners=[
            listener(
                "https",
                443,
                "HTTPS",
                allowed=ALL,
                tls={"certificateRefs": [{"name": "missing"}]},
            )
        ]
    )
    t = tables(gw, route("r"))
    assert t.listeners == ()
    assert isinstance(select(t, parent=GatewayParent(INFRA, "gw", 443)), NoRoute)


# --- GAMMA: Service parents ----------------------------------------------------------------

ECHO = ServiceParent("shop", "echo", 80)


def _gamma(*routes: Any) -> Any:
    return tables(
        service(
            "echo", namespace="shop", ports=[(80, "http"), (9090, "admin")], cluster_ip="10.96.1.1"
        ),
        service("v1", namespace="shop", ports=[80]),
        service("v2", namespace="shop", ports=[80]),
        *routes,
    )


def _to(name: str) -> dict[str, Any]:
    return {"backendRefs": [backend(name, 80, namespace="shop")]}


def test_producer_route_applies_to_every_client() -> None:
    t = _gamma(route("p", namespace="shop", parents=[svc_ref("echo")], rules=[_to("v1")]))
    assert picked(t, parent=ECHO) == "shop/p#0"
    assert picked(t, parent=ECHO, client_namespace="other") == "shop/p#0"
    assert t.parent_for_address("10.96.1.1", 80) == ECHO
    assert t.parent_for_address("10.96.1.1", 9090) == ServiceParent("shop", "echo", 9090)
    assert t.l7_services() == {ECHO, ServiceParent("shop", "echo", 9090)}


# Spec (GEP-1426, Ports): parentRef.port restricts the route to that Service port;
# sectionName names the port.
@pytest.mark.parametrize(
    ("ref", "ports"),
    [
        ({}, {80, 9090}),
        ({"port": 80}, {80}),
        ({"sectionName": "admin"}, {9090}),
        ({"port": 81}, set()),
    ],
)
def test_service_parent_ports(ref: dict[str, Any], ports: set[int]) -> None:
    t = _gamma(route("p", namespace="shop", parents=[svc_ref("echo", **ref)], rules=[_to("v1")]))
    assert {p for p in (80, 9090) if picked(t, parent=ServiceParent("shop", "echo", p))} == ports


def test_consumer_route_applies_only_to_its_namespace_and_replaces_producer_routes() -> None:
    # GEP-1426, "Namespace boundaries" and "Multiple routes for a Service".
    producer = route("p", namespace="shop", parents=[svc_ref("echo")], rules=[_to("v1")])
    consumer = route(
        "c",
        namespace="front",
        parents=[svc_ref("echo", namespace="shop")],
        rules=[{"matches": [{"path": {"value": "/only"}}], **_to("v2")}],
    )
    t = _gamma(producer, consumer, grant("shop", "front"))
    assert picked(t, "/only", parent=ECHO, client_namespace="front") == "front/c#0"
    # Consumer routes replace producer routes for that namespace: no fall-through.
    assert picked(t, "/else", parent=ECHO, client_namespace="front") is None
    assert picked(t, "/only", parent=ECHO, client_namespace="shop") == "shop/p#0"
    assert picked(t, "/only", parent=ECHO) == "shop/p#0"


def test_gamma_ignores_route_hostnames() -> None:
    # GEP-1426, "hostnames field": SHOULD NOT infer any functionality from hostnames.
    t = _gamma(
        route(
            "p",
            namespace="shop",
            parents=[svc_ref("echo")],
            hostnames=("nope.example.com",),
            rules=[_to("v1")],
        )
    )
    assert picked(t, parent=ECHO, host="echo.shop.svc.cluster.local") == "shop/p#0"


def test_service_without_routes_passes_through() -> None:
    t = _gamma()
    found = select(t, parent=ECHO)
    assert isinstance(found, NoRoute) and found.reason is NoRouteReason.UNKNOWN_PARENT
    assert t.parent_for_address("10.96.1.1", 80) is None


def test_headless_service_is_not_a_parent() -> None:
    t = tables(
        service("headless", namespace="shop", ports=[80], cluster_ip="None"),
        service("v1", namespace="shop", ports=[80]),
        route("p", namespace="shop", parents=[svc_ref("headless")], rules=[_to("v1")]),
    )
    assert t.l7_services() == frozenset()
