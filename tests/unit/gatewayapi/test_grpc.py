"""GRPCRoute: method and header matching, precedence (GRPCRouteRule.matches), Service
parents (GAMMA), the HTTPRoute/GRPCRoute listener conflict, and the gRPC errors the proxy
answers itself."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.core import Service
from gatewayapi import Forward, Respond, ServiceParent
from gatewayapi.grpc import is_grpc, split_method
from gatewayapi.grpcstatus import GrpcStatus, as_grpc, encode_message, status_for_http
from gatewayapi.headers import Headers
from gatewayapi.status import compute_status
from gatewayapi.types import NoRoute, Response
from tests.unit.gatewayapi.helpers import (
    GRPC,
    PARENT,
    backend,
    draws,
    grpc_route,
    inputs,
    picked,
    request,
    route,
    service,
    svc_ref,
    tables,
)


def _method(
    service: str | None = None, method: str | None = None, regex: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if service is not None:
        out["service"] = service
    if method is not None:
        out["method"] = method
    if regex:
        out["type"] = "RegularExpression"
    return {"method": out}


def _rule(name: str, *matches: dict[str, Any], to: str = "web") -> dict[str, Any]:
    return {"name": name, "matches": list(matches), "backendRefs": [backend(to)]}


def _grpc_pick(
    t: Any, path: str, host: str = "example.com", headers: tuple[tuple[str, str], ...] = ()
) -> str | None:
    return picked(t, path, "POST", host, (*GRPC, *headers))


# --- pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "grpc"),
    [
        ("application/grpc", True),
        ("application/grpc+proto", True),
        ("Application/GRPC; charset=utf-8", True),
        ("application/grpc-web", False),
        ("application/json", False),
        (None, False),
    ],
)
def test_is_grpc_reads_the_content_type(content_type: str | None, grpc: bool) -> None:
    headers = Headers((("content-type", content_type),) if content_type else ())
    assert is_grpc(headers) is grpc


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("/helloworld.Greeter/SayHello", ("helloworld.Greeter", "SayHello")),
        ("/S/M", ("S", "M")),
        ("/S/", None),
        ("//M", None),
        ("/S/M/x", None),
        ("/S", None),
        ("S/M", None),
    ],
)
def test_split_method(path: str, parts: tuple[str, str] | None) -> None:
    assert split_method(path) == parts


# --- matching --------------------------------------------------------------------------

MATCHING = [
    # (rule matches, path, extra headers, matched)
    ([_method("a.S", "M")], "/a.S/M", (), True),
    ([_method("a.S", "M")], "/a.S/m", (), False),  # case-sensitive
    ([_method("a.S", "M")], "/a.s/M", (), False),
    ([_method("a.S")], "/a.S/Anything", (), True),
    ([_method("a.S")], "/a.SS/M", (), False),
    ([_method(method="M")], "/any.Service/M", (), True),
    ([_method(method="M")], "/any.Service/N", (), False),
    ([_method("a\\..*", regex=True)], "/a.B/M", (), True),
    ([_method("a\\..*", regex=True)], "/b.B/M", (), False),
    ([_method("a.S", "Get.*", regex=True)], "/a.S/GetUser", (), True),
    ([_method("a.S", "Get.*", regex=True)], "/a.S/ListUsers", (), False),
    ([_method(method="Get", regex=True)], "/a.S/GetUser", (), False),  # whole value
    ([], "/x.Y/Z", (), True),  # no matches: every gRPC request
    ([], "/not-a-method", (), False),
    ([{"headers": [{"name": "X-Version", "value": "2"}]}], "/a.S/M", (("x-version", "2"),), True),
    ([{"headers": [{"name": "x-version", "value": "2"}]}], "/a.S/M", (("x-version", "1"),), False),
    (
        [{"headers": [{"name": "v", "value": "[0-9]+", "type": "RegularExpression"}]}],
        "/a.S/M",
        (("v", "42"),),
        True,
    ),
    # of equivalent header names only the first counts
    (
        [{"headers": [{"name": "V", "value": "1"}, {"name": "v", "value": "2"}]}],
        "/a.S/M",
        (("v", "1"),),
        True,
    ),
]


@pytest.mark.parametrize(("matches", "path", "headers", "matched"), MATCHING)
def test_method_and_header_matching(
    matches: list[dict[str, Any]], path: str, headers: tuple[tuple[str, str], ...], matched: bool
) -> None:
    rules = (
        [{"matches": matches, "backendRefs": [backend("web")]}]
        if matches
        else [{"backendRefs": [backend("web")]}]
    )
    t = tables(grpc_route(rules=rules))
    assert (_grpc_pick(t, path, headers=headers) == "default/g#0") is matched


def test_grpc_routes_answer_only_grpc_requests() -> None:
    t = tables(grpc_route(rules=[_rule("r", _method("a.S", "M"))]))
    assert _grpc_pick(t, "/a.S/M") == "default/g#r"
    assert picked(t, "/a.S/M", "POST") is None  # no application/grpc content-type


# --- precedence ------------------------------------------------------------------------

PRECEDENCE = [
    # (routes as (name, rules, hostnames, created), path, headers, expected)
    (
        [
            ("a", [_rule("svc", _method("a.S"))], (), None),
            ("b", [_rule("both", _method("a.S", "M"))], (), None),
        ],
        "/a.S/M",
        (),
        "default/b#both",  # more method characters
    ),
    (
        [
            ("a", [_rule("method", _method(method="M"))], (), None),
            ("b", [_rule("svc", _method("a.S"))], (), None),
        ],
        "/a.S/M",
        (),
        "default/b#svc",  # service characters before method characters
    ),
    (
        [
            ("a", [_rule("short", _method("S"))], (), None),
            ("b", [_rule("long", _method("[a-z.]+S", regex=True))], (), None),
        ],
        "/S/M",
        (),
        "default/a#short",  # a regex must match to count
    ),
    (
        [
            ("a", [_rule("re", _method("a\\.S", regex=True))], (), None),
            ("b", [_rule("ex", _method("a.SS"))], (), None),
        ],
        "/a.SS/M",
        (),
        "default/b#ex",
    ),
    (
        [
            ("a", [_rule("re", _method("a.S", regex=True))], (), None),
            ("b", [_rule("ex", _method("a.S"))], (), None),
        ],
        "/a.S/M",
        (),
        "default/b#ex",  # equal counts: Exact first
    ),
    (
        [
            ("a", [_rule("plain", _method("a.S", "M"))], (), None),
            (
                "b",
                [_rule("hdr", {**_method("a.S", "M"), "headers": [{"name": "h", "value": "1"}]})],
                (),
                None,
            ),
        ],
        "/a.S/M",
        (("h", "1"),),
        "default/b#hdr",  # more header matches
    ),
    (
        [
            ("a", [_rule("any", _method("a.S"))], ("*.example.com",), None),
            ("b", [_rule("any", _method("a.S"))], ("api.example.com",), None),
        ],
        "/a.S/M",
        (),
        "default/b#any",  # exact hostname before wildcard
    ),
    (
        [
            ("b", [_rule("old", _method("a.S"))], (), "2023-01-01T00:00:00Z"),
            ("a", [_rule("new", _method("a.S"))], (), None),
        ],
        "/a.S/M",
        (),
        "default/b#old",  # the oldest route
    ),
    (
        [
            ("b", [_rule("x", _method("a.S"))], (), None),
            ("a", [_rule("x", _method("a.S"))], (), None),
        ],
        "/a.S/M",
        (),
        "default/a#x",  # then namespace/name
    ),
    (
        [("a", [_rule("first", _method("a.S")), _rule("second", _method("a.S"))], (), None)],
        "/a.S/M",
        (),
        "default/a#first",  # then rule order
    ),
]


@pytest.mark.parametrize(("routes", "path", "headers", "expected"), PRECEDENCE)
def test_precedence(
    routes: list[tuple[str, list[dict[str, Any]], tuple[str, ...], str | None]],
    path: str,
    headers: tuple[tuple[str, str], ...],
    expected: str,
) -> None:
    objs = [
        grpc_route(name, rules=rules, hostnames=hosts, **({"created": created} if created else {}))
        for name, rules, hosts, created in routes
    ]
    assert _grpc_pick(tables(*objs), path, host="api.example.com", headers=headers) == expected


def test_method_based_routing_to_two_backends_with_weights() -> None:
    rules = [
        _rule("hello", _method("helloworld.Greeter", "SayHello"), to="v1"),
        {
            "name": "rest",
            "matches": [_method("helloworld.Greeter")],
            "backendRefs": [backend("v2", weight=3), backend("v3", weight=1)],
        },
    ]
    t = tables(grpc_route(rules=rules))
    hello = request("/helloworld.Greeter/SayHello", "POST", headers=GRPC)
    other = request("/helloworld.Greeter/SayBye", "POST", headers=GRPC)
    first = t.route(PARENT, hello, rng=draws(0.9))
    assert isinstance(first, Forward) and str(first.backend) == "default/v1:8080"
    low = t.route(PARENT, other, rng=draws(0.1))
    high = t.route(PARENT, other, rng=draws(0.9))
    assert isinstance(low, Forward) and str(low.backend) == "default/v2:8080"
    assert isinstance(high, Forward) and str(high.backend) == "default/v3:8080"
    assert first.selection.ref.kind == "GRPCRoute"


def test_filters_apply_to_grpc_requests() -> None:
    rule = {
        **_rule("r", _method("a.S")),
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]},
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"add": [{"name": "x-b", "value": "2"}]},
            },
            {"type": "RequestMirror", "requestMirror": {"backendRef": backend("v1")}},
        ],
    }
    t = tables(grpc_route(rules=[rule]))
    result = t.route(PARENT, request("/a.S/M", "POST", headers=GRPC), rng=draws(0.0, 0.0))
    assert isinstance(result, Forward)
    assert result.request.headers.get("x-a") == "1"
    assert [str(m.target) for m in result.mirrors] == ["default/v1:8080"]
    assert result.finish(Response(200)).headers.get("x-b") == "2"


# --- what the proxy answers itself -----------------------------------------------------


def _grpc_status(result: Forward | Respond) -> tuple[int, str | None, bytes]:
    assert isinstance(result, Respond), result
    response = result.response
    return response.status, response.headers.get("grpc-status"), response.body


def test_no_matching_route_is_unimplemented_trailers_only() -> None:
    t = tables(grpc_route(rules=[_rule("r", _method("a.S", "M"))]))
    result = t.route(PARENT, request("/a.S/Other", "POST", headers=GRPC))
    assert _grpc_status(result) == (200, "12", b"")
    assert isinstance(result, Respond)
    assert result.response.headers.get("content-type") == "application/grpc"
    plain = t.route(PARENT, request("/a.S/Other", "POST"))
    assert isinstance(plain, Respond) and plain.response.status == 404  # HTTP keeps HTTP


def test_invalid_backend_and_no_backend_are_unavailable() -> None:
    rules = [
        _rule("missing", _method("a.S", "Missing"), to="nonexistent"),
        {"name": "none", "matches": [_method("a.S", "None")]},
    ]
    t = tables(grpc_route(rules=rules))
    for method in ("Missing", "None"):
        result = t.route(PARENT, request(f"/a.S/{method}", "POST", headers=GRPC), rng=draws(0.0))
        assert _grpc_status(result) == (200, "14", b"")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 13),
        (401, 16),
        (403, 7),
        (404, 12),
        (429, 14),
        (502, 14),
        (503, 14),
        (504, 14),
        (500, 2),
    ],
)
def test_http_to_grpc_status_mapping(status: int, code: int) -> None:
    assert status_for_http(status) == code
    converted = as_grpc(Response(status, Headers(), b"upstream failed\n"))
    assert converted.status == 200
    assert converted.headers.get("grpc-status") == str(code)
    assert converted.headers.get("grpc-message") == "upstream failed"


def test_timeouts_can_name_deadline_exceeded_and_messages_are_percent_encoded() -> None:
    converted = as_grpc(Response(504), GrpcStatus.DEADLINE_EXCEEDED, "timed out: 100%")
    assert converted.headers.get("grpc-status") == "4"
    assert converted.headers.get("grpc-message") == "timed out: 100%25"
    assert encode_message("é\n") == "%C3%A9%0A"
    assert as_grpc(Response(200)) == Response(200)


# --- Service parents (GAMMA) -----------------------------------------------------------

GRPC_SVC = ServiceParent("default", "greeter", 50051)


def _greeter() -> Service:
    return service("greeter", ports=(50051,), cluster_ip="10.96.0.50")


def test_a_grpcroute_with_a_service_parent_steers_that_service() -> None:
    r = grpc_route(
        parents=[svc_ref("greeter", port=50051)], rules=[_rule("r", _method("a.S"), to="v1")]
    )
    t = tables(r, _greeter())
    assert GRPC_SVC in t.l7_services()
    assert t.parent_for_address("10.96.0.50", 50051) == GRPC_SVC
    assert t.l7_client_namespaces(GRPC_SVC) is None  # a producer route: every client
    assert picked(t, "/a.S/M", "POST", "greeter", GRPC, parent=GRPC_SVC) == "default/g#r"
    result = t.route(GRPC_SVC, request("/b.S/M", "POST", "greeter", GRPC))
    assert _grpc_status(result) == (200, "12", b"")


def test_a_consumer_grpcroute_steers_only_its_namespace() -> None:
    r = grpc_route(
        namespace="client",
        parents=[svc_ref("greeter", "default", port=50051)],
        rules=[_rule("r", _method("a.S"))],
    )
    t = tables(r, _greeter())
    assert t.l7_client_namespaces(GRPC_SVC) == frozenset({"client"})


# --- status and the HTTPRoute/GRPCRoute conflict ---------------------------------------


def _accepted(status: dict[str, Any]) -> tuple[str, str]:
    cond = next(c for c in status["parents"][0]["conditions"] if c["type"] == "Accepted")
    return cond["status"], cond["reason"]


def _resolved(status: dict[str, Any]) -> tuple[str, str]:
    cond = next(c for c in status["parents"][0]["conditions"] if c["type"] == "ResolvedRefs")
    return cond["status"], cond["reason"]


def test_status_reports_grpcroutes_apart_from_httproutes() -> None:
    same_name_http = route("g", hostnames=["a.example.com"])
    report = compute_status(inputs(grpc_route(hostnames=["b.example.com"]), same_name_http))
    assert _accepted(report.grpc_routes["default/g"]) == ("True", "Accepted")
    assert _accepted(report.routes["default/g"]) == ("True", "Accepted")


def test_status_resolved_refs_for_grpc_backends() -> None:
    report = compute_status(inputs(grpc_route(rules=[_rule("r", to="nonexistent")])))
    assert _resolved(report.grpc_routes["default/g"]) == ("False", "BackendNotFound")


def test_cross_namespace_backend_needs_a_grant_from_grpcroutes() -> None:
    from tests.unit.gatewayapi.helpers import grant

    rules = [{"backendRefs": [backend("web", namespace="other")]}]
    other_web = service("web", namespace="other", cluster_ip="10.96.1.1")
    http_grant = grant("other", "default", from_kind="HTTPRoute")
    refused = compute_status(inputs(grpc_route(rules=rules), other_web, http_grant))
    assert _resolved(refused.grpc_routes["default/g"]) == ("False", "RefNotPermitted")
    grpc_grant = grant("other", "default", from_kind="GRPCRoute")
    allowed = compute_status(inputs(grpc_route(rules=rules), other_web, grpc_grant))
    assert _resolved(allowed.grpc_routes["default/g"]) == ("True", "ResolvedRefs")


def test_listener_allowing_only_httproutes_refuses_grpcroutes() -> None:
    from tests.unit.gatewayapi.helpers import gateway, listener

    gw = gateway(
        listeners=[
            listener(allowed={"namespaces": {"from": "All"}, "kinds": [{"kind": "HTTPRoute"}]})
        ]
    )
    report = compute_status(inputs(grpc_route(), gw))
    assert _accepted(report.grpc_routes["default/g"]) == ("False", "NotAllowedByListeners")


CONFLICTS = [
    # (HTTPRoute hostnames, created), (GRPCRoute hostnames, created), winner kind or "both"
    (((), "2024-01-01T00:00:00Z"), ((), "2024-02-01T00:00:00Z"), "HTTPRoute"),
    (((), "2024-03-01T00:00:00Z"), ((), "2024-02-01T00:00:00Z"), "GRPCRoute"),
    (
        (("a.example.com",), "2024-01-01T00:00:00Z"),
        (("b.example.com",), "2024-02-01T00:00:00Z"),
        "both",
    ),
    (
        (("*.example.com",), "2024-01-01T00:00:00Z"),
        (("b.example.com",), "2024-02-01T00:00:00Z"),
        "HTTPRoute",
    ),
    # same age: "{namespace}/{name}" decides, default/g before default/r
    (((), "2024-01-01T00:00:00Z"), ((), "2024-01-01T00:00:00Z"), "GRPCRoute"),
]


@pytest.mark.parametrize(("http", "grpc", "winner"), CONFLICTS)
def test_httproute_and_grpcroute_with_intersecting_hostnames_on_one_listener(
    http: tuple[tuple[str, ...], str], grpc: tuple[tuple[str, ...], str], winner: str
) -> None:
    objs = [
        route("r", hostnames=http[0], created=http[1]),
        grpc_route("g", hostnames=grpc[0], created=grpc[1]),
    ]
    report = compute_status(inputs(*objs))
    http_ok = _accepted(report.routes["default/r"])[0] == "True"
    grpc_ok = _accepted(report.grpc_routes["default/g"])[0] == "True"
    assert (http_ok, grpc_ok) == {
        "HTTPRoute": (True, False),
        "GRPCRoute": (False, True),
        "both": (True, True),
    }[winner]
    if winner != "both":
        loser = (
            report.grpc_routes["default/g"] if winner == "HTTPRoute" else report.routes["default/r"]
        )
        assert _accepted(loser) == ("False", "RouteKindConflict")
    t = tables(*objs)
    grpc_served = _grpc_pick(t, "/a.S/M", host="b.example.com") == "default/g#0"
    assert grpc_served is grpc_ok


def test_no_route_for_grpc_is_a_no_route_selection() -> None:
    t = tables(grpc_route(rules=[_rule("r", _method("a.S", "M"))]))
    from tests.unit.gatewayapi.helpers import select

    assert isinstance(select(t, "/x.Y/Z", "POST", headers=GRPC), NoRoute)


def test_grpc_rules_retry_only_tries_that_never_reached_a_backend() -> None:
    from gatewayapi import UpstreamError

    t = tables(grpc_route(rules=[_rule("r", _method("a.S"))]))
    result = t.route(PARENT, request("/a.S/M", "POST", headers=GRPC), rng=draws(0.0))
    assert isinstance(result, Forward) and result.retry is not None
    policy = result.retry
    assert policy.should_retry(1, UpstreamError.CONNECT_FAILED) is not None
    assert policy.should_retry(2, UpstreamError.CONNECT_FAILED) is not None
    assert policy.should_retry(3, UpstreamError.CONNECT_FAILED) is None  # two retries at most
    assert policy.should_retry(1, UpstreamError.RESET_AFTER_SEND) is None
    assert policy.should_retry(1, 503) is None  # a response is the backend's answer
