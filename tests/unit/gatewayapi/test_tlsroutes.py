"""TLSRoute: attachment to TLS listeners and its status reasons (the upstream conformance
cases' expectations), hostname conflicts between TLSRoutes, and choosing by SNI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.gateway import TLSMode
from agent.model.tlsroute import TLSRoute
from gatewayapi.analysis import analyze
from gatewayapi.compile import compile_analysis
from gatewayapi.status import compute_status
from gatewayapi.types import BackendTarget, GatewayParent
from tests.unit.gatewayapi.helpers import (
    GW,
    INFRA,
    T0,
    gateway,
    gateway_class,
    grant,
    gw_ref,
    inputs,
    listener,
    service,
    tls_secret,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
ALL = {"namespaces": {"from": "All"}}
PASSTHROUGH = listener("tls", 443, "TLS", allowed=ALL, tls={"mode": "Passthrough"})


def tls_route(
    name: str = "t",
    hostnames: tuple[str, ...] = ("db.example.com",),
    backends: tuple[dict[str, Any], ...] = ({"name": "web", "port": 8080},),
    parents: tuple[dict[str, Any], ...] = (),
    namespace: str = "default",
    created: str = T0,
) -> TLSRoute:
    obj = from_dict(
        {
            "apiVersion": GW,
            "kind": "TLSRoute",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created,
                         "generation": 1},
            "spec": {
                "parentRefs": list(parents) or [gw_ref()],
                "hostnames": list(hostnames),
                "rules": [{"backendRefs": list(backends)}],
            },
        }
    )
    assert isinstance(obj, TLSRoute)
    return obj


def world(*objects: Any, listeners: tuple[dict[str, Any], ...] = (PASSTHROUGH,)) -> Any:
    return inputs(gateway_class(), gateway(listeners=listeners), *objects)


def conditions(status: dict[str, Any], parent: int = 0) -> dict[str, tuple[str, str]]:
    found = status["parents"][parent]["conditions"]
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def route_status(*objects: Any, listeners: tuple[dict[str, Any], ...] = (PASSTHROUGH,)) -> Any:
    return compute_status(world(*objects, listeners=listeners), NOW)


def test_a_route_on_a_passthrough_listener_is_accepted_and_counted() -> None:
    report = route_status(tls_route())
    assert conditions(report.tls_routes["default/t"]) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    (tls,) = report.gateways[f"{INFRA}/gw"]["listeners"]
    assert tls["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    assert tls["attachedRoutes"] == 1
    accepted = {c["type"]: c["status"] for c in tls["conditions"]}
    assert accepted["Accepted"] == accepted["Programmed"] == "True"


@pytest.mark.parametrize(
    ("listeners", "reason"),
    [
        ((listener("http", 80, "HTTP", allowed=ALL),), "NotAllowedByListeners"),
        (
            (listener("https", 443, "HTTPS", allowed=ALL,
                      tls={"certificateRefs": [{"name": "cert"}]}),),
            "NotAllowedByListeners",
        ),
        (
            (listener("tls", 443, "TLS", hostname="other.example.com", allowed=ALL,
                      tls={"mode": "Passthrough"}),),
            "NoMatchingListenerHostname",
        ),
        (
            (listener("tls", 443, "TLS", tls={"mode": "Passthrough"}),),  # from: Same
            "NotAllowedByListeners",
        ),
    ],
)
def test_routes_not_admitted_say_why(listeners: tuple[dict[str, Any], ...], reason: str) -> None:
    report = route_status(tls_route(), tls_secret("cert"), listeners=listeners)
    assert conditions(report.tls_routes["default/t"])["Accepted"] == ("False", reason)
    assert all(ls["attachedRoutes"] == 0 for ls in report.gateways[f"{INFRA}/gw"]["listeners"])


def test_http_listeners_do_not_list_tlsroute_and_tls_listeners_refuse_httproute_kinds() -> None:
    kinds = {"namespaces": {"from": "All"}, "kinds": [{"kind": "HTTPRoute"}, {"kind": "TLSRoute"}]}
    only = listener("tls", 443, "TLS", allowed=kinds, tls={"mode": "Passthrough"})
    report = route_status(tls_route(), listeners=(only,))
    (tls,) = report.gateways[f"{INFRA}/gw"]["listeners"]
    assert [k["kind"] for k in tls["supportedKinds"]] == ["TLSRoute"]
    refs = next(c for c in tls["conditions"] if c["type"] == "ResolvedRefs")
    assert (refs["status"], refs["reason"]) == ("False", "InvalidRouteKinds")


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        ({"name": "missing", "port": 8080}, "BackendNotFound"),
        ({"name": "web", "port": 9999}, "BackendNotFound"),
        ({"name": "web", "namespace": "other", "port": 8080}, "RefNotPermitted"),
        ({"name": "web", "kind": "Pod", "port": 8080}, "InvalidKind"),
    ],
)
def test_bad_backends_leave_the_route_accepted_with_resolved_refs_false(
    backend: dict[str, Any], reason: str
) -> None:
    report = route_status(tls_route(backends=(backend,)), service("web", "other"))
    assert conditions(report.tls_routes["default/t"]) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("False", reason),
    }


def test_a_reference_grant_from_tlsroutes_permits_another_namespace() -> None:
    backend = {"name": "web", "namespace": "other", "port": 8080}
    granted = grant("other", "default", from_kind="TLSRoute")
    report = route_status(tls_route(backends=(backend,)), service("web", "other"), granted)
    assert conditions(report.tls_routes["default/t"])["ResolvedRefs"] == ("True", "ResolvedRefs")
    wrong_kind = grant("other", "default", from_kind="HTTPRoute")
    report = route_status(tls_route(backends=(backend,)), service("web", "other"), wrong_kind)
    assert conditions(report.tls_routes["default/t"])["ResolvedRefs"][1] == "RefNotPermitted"


def test_the_oldest_route_keeps_a_contested_hostname() -> None:
    old = tls_route("b-old", ("db.example.com",), created="2024-01-01T00:00:00Z")
    young = tls_route("a-young", ("db.example.com",), created="2024-06-01T00:00:00Z")
    mixed = tls_route("c-mixed", ("db.example.com", "x.example.com"),
                      created="2024-06-01T00:00:00Z")
    report = route_status(old, young, mixed)
    assert conditions(report.tls_routes["default/b-old"])["Accepted"] == ("True", "Accepted")
    assert conditions(report.tls_routes["default/a-young"])["Accepted"] == (
        "False", "HostnameConflict"
    )
    assert conditions(report.tls_routes["default/c-mixed"])["Accepted"] == ("True", "Accepted")
    (tls,) = report.gateways[f"{INFRA}/gw"]["listeners"]
    assert tls["attachedRoutes"] == 2
    table = compile_analysis(analyze(world(old, young, mixed))).tls[GatewayParent(INFRA, "gw", 443)]
    choice = table.select("db.example.com")
    assert choice is not None and choice.rule is not None
    assert choice.rule.ref.route == "b-old"
    choice = table.select("x.example.com")
    assert choice is not None and choice.rule is not None and choice.rule.ref.route == "c-mixed"


def test_equal_timestamps_fall_back_to_namespace_and_name() -> None:
    a, b = tls_route("a"), tls_route("b")
    report = route_status(b, a)
    assert conditions(report.tls_routes["default/a"])["Accepted"][0] == "True"
    assert conditions(report.tls_routes["default/b"])["Accepted"] == ("False", "HostnameConflict")


def _select(table: Any, name: str | None) -> tuple[str | None, str | None]:
    choice = table.select(name)
    if choice is None:
        return (None, None)
    return (choice.listener.name, choice.rule.ref.route if choice.rule else None)


def test_sni_chooses_exact_before_wildcard_and_the_most_specific_listener() -> None:
    routes = (
        tls_route("exact", ("db.example.com",)),
        tls_route("wild", ("*.example.com",)),
        tls_route("deep", ("*.eu.example.com",)),
        tls_route("any-host", ("other.test",)),
    )
    listeners = (
        listener("wild", 443, "TLS", hostname="*.example.com", allowed=ALL,
                 tls={"mode": "Passthrough"}),
        listener("bare", 443, "TLS", allowed=ALL, tls={"mode": "Passthrough"}),
    )
    table = compile_analysis(analyze(world(*routes, listeners=listeners))).tls[
        GatewayParent(INFRA, "gw", 443)
    ]
    assert _select(table, "db.example.com") == ("wild", "exact")
    assert _select(table, "DB.example.com.") == ("wild", "exact")
    assert _select(table, "a.example.com") == ("wild", "wild")
    assert _select(table, "a.eu.example.com") == ("wild", "deep")
    assert _select(table, "example.com") == ("bare", None)
    assert _select(table, "other.test") == ("bare", "any-host")
    assert _select(table, None) == ("bare", None)


def test_no_listener_for_the_name_and_no_bare_listener_selects_nothing() -> None:
    only = listener("tls", 443, "TLS", hostname="db.example.com", allowed=ALL,
                    tls={"mode": "Passthrough"})
    table = compile_analysis(analyze(world(tls_route(), listeners=(only,)))).tls[
        GatewayParent(INFRA, "gw", 443)
    ]
    assert _select(table, "db.example.com") == ("tls", "t")
    assert _select(table, "nope.example.com") == (None, None)
    assert _select(table, None) == (None, None)


def test_weighted_backends_compile_with_invalid_ones_keeping_their_share() -> None:
    backends = ({"name": "web", "port": 8080, "weight": 3}, {"name": "gone", "port": 1},
                {"name": "v1", "port": 8080, "weight": 0})
    table = compile_analysis(analyze(world(tls_route(backends=backends)))).tls[
        GatewayParent(INFRA, "gw", 443)
    ]
    choice = table.select("db.example.com")
    assert choice is not None and choice.rule is not None
    rule = choice.rule
    assert [(b.target, b.weight) for b in rule.backends] == [
        (BackendTarget("default", "web", 8080), 3), (None, 1),
        (BackendTarget("default", "v1", 8080), 0),
    ]
    assert "gone" in rule.backends[1].problem
    assert [rule.choice.pick(d) for d in (0.0, 0.74, 0.75, 0.99)] == [0, 0, 1, 1]


def test_terminate_listeners_are_served_with_their_certificates() -> None:
    term = listener("term", 8443, "TLS", allowed=ALL,
                    tls={"mode": "Terminate", "certificateRefs": [{"name": "cert"}]})
    analysis = analyze(world(tls_route(), tls_secret("cert"), listeners=(term,)))
    table = compile_analysis(analysis).tls[GatewayParent(INFRA, "gw", 8443)]
    choice = table.select("db.example.com")
    assert choice is not None and choice.rule is not None
    assert choice.listener.mode is TLSMode.TERMINATE
    assert choice.listener.certificates == ((INFRA, "cert"),)
    report = compute_status(analysis.inputs, NOW, analysis=analysis)
    assert conditions(report.tls_routes["default/t"])["Accepted"] == ("True", "Accepted")


def test_a_terminate_listener_without_its_secret_is_not_programmed_nor_served() -> None:
    term = listener("term", 8443, "TLS", allowed=ALL,
                    tls={"mode": "Terminate", "certificateRefs": [{"name": "missing"}]})
    analysis = analyze(world(tls_route(), listeners=(term,)))
    assert compile_analysis(analysis).tls == {}
    report = compute_status(analysis.inputs, NOW, analysis=analysis)
    (ls,) = report.gateways[f"{INFRA}/gw"]["listeners"]
    refs = next(c for c in ls["conditions"] if c["type"] == "ResolvedRefs")
    assert (refs["status"], refs["reason"]) == ("False", "InvalidCertificateRef")


def test_a_passthrough_listener_naming_tcproute_lists_only_tlsroute() -> None:
    """Upstream's TLSRouteListenerPassthroughSupportedKinds: kinds [TCPRoute, TLSRoute] on a
    Passthrough listener; TCPRoute is served on TCP listeners only."""
    kinds = {"namespaces": {"from": "Same"}, "kinds": [{"kind": "TCPRoute"}, {"kind": "TLSRoute"}]}
    only = listener("tls-passthrough", 443, "TLS", allowed=kinds, tls={"mode": "Passthrough"})
    report = route_status(listeners=(only,))
    (tls,) = report.gateways[f"{INFRA}/gw"]["listeners"]
    assert tls["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    assert tls["attachedRoutes"] == 0
    got = {c["type"]: (c["status"], c["reason"]) for c in tls["conditions"]}
    assert got["ResolvedRefs"] == ("False", "InvalidRouteKinds")
    assert got["Accepted"] == ("True", "Accepted")
