"""Converter tests for GRPCRoute: every field, CRD defaults, and the CRD's validation
(OpenAPI bounds and CEL rules of gateway-api apis/v1/grpcroute_types.go)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.grpcroute import GRPCMatchType, GRPCMethodMatch, GRPCRoute
from agent.model.httproute import FilterType
from agent.model.kinds import resolve_kind
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

_M = "spec.rules[0].matches[0]"
ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GRPCRoute",
    "metadata": {"name": "greeter", "namespace": "shop"},
    "spec": {
        "parentRefs": [
            {"name": "edge", "namespace": "infra", "sectionName": "grpc"},
            {"group": "", "kind": "Service", "name": "greeter", "port": 50051},
        ],
        "hostnames": ["grpc.example.com"],
        "rules": [
            {
                "name": "hello",
                "matches": [
                    {
                        "method": {"service": "helloworld.Greeter", "method": "SayHello"},
                        "headers": [{"name": "x-canary", "value": "1"}],
                    },
                    {"method": {"type": "RegularExpression", "service": "helloworld\\..*"}},
                ],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"set": [{"name": "x-via", "value": "tulle"}]},
                    },
                    {
                        "type": "RequestMirror",
                        "requestMirror": {"backendRef": {"name": "shadow", "port": 50051}},
                    },
                ],
                "backendRefs": [
                    {"name": "greeter-v1", "port": 50051, "weight": 90},
                    {
                        "name": "greeter-v2",
                        "port": 50051,
                        "weight": 10,
                        "filters": [
                            {
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"add": [{"name": "x-v", "value": "2"}]},
                            }
                        ],
                    },
                ],
            },
            {"backendRefs": [{"name": "fallback", "port": 50051}]},
        ],
    },
}


def test_route_reads_every_field_and_round_trips() -> None:
    route = round_trip(ROUTE)
    assert isinstance(route, GRPCRoute)
    assert route.spec.hostnames == ("grpc.example.com",)
    hello, fallback = route.spec.rules
    assert hello.name == "hello"
    exact, regex = hello.matches
    assert exact.method == GRPCMethodMatch(GRPCMatchType.EXACT, "helloworld.Greeter", "SayHello")
    assert exact.headers[0].name == "x-canary"
    assert exact.headers[0].type is GRPCMatchType.EXACT
    assert regex.method == GRPCMethodMatch(GRPCMatchType.REGULAR_EXPRESSION, "helloworld\\..*")
    assert [f.type for f in hello.filters] == [
        FilterType.REQUEST_HEADER_MODIFIER,
        FilterType.REQUEST_MIRROR,
    ]
    assert [(b.name, b.weight) for b in hello.backend_refs] == [
        ("greeter-v1", 90),
        ("greeter-v2", 10),
    ]
    assert hello.backend_refs[1].filters[0].type is FilterType.RESPONSE_HEADER_MODIFIER
    assert fallback.matches == ()  # every gRPC request
    assert fallback.backend_refs[0].weight == 1


def test_grpcroute_is_a_known_kind() -> None:
    info = resolve_kind("grpcroutes.gateway.networking.k8s.io")
    assert (info.kind, info.api_version) == ("GRPCRoute", "gateway.networking.k8s.io/v1")


def test_header_names_differing_in_case_are_admitted() -> None:
    headers = [{"name": "A", "value": "1"}, {"name": "a", "value": "2"}]
    route = round_trip(edit(ROUTE, f"{_M}.headers", headers))
    assert isinstance(route, GRPCRoute)
    assert len(route.spec.rules[0].matches[0].headers) == 2


def test_service_only_and_method_only_matches_are_valid() -> None:
    for method in ({"service": "a.B"}, {"method": "Get"}, {"service": ".pkg.v1._S9"}):
        doc = edit(ROUTE, "spec.rules[0].matches[0].method", method)
        round_trip(doc)


ERRORS: list[tuple[dict[str, Any], str]] = [
    (edit(ROUTE, f"{_M}.method", {"type": "Exact"}), "one or both of 'service' or 'method'"),
    (edit(ROUTE, f"{_M}.method", {}), "one or both of 'service' or 'method'"),
    (edit(ROUTE, f"{_M}.method.service", "helloworld/Greeter"), "service must only contain"),
    (edit(ROUTE, f"{_M}.method.service", "1abc"), "service must only contain"),
    (edit(ROUTE, f"{_M}.method.method", "Say.Hello"), "method must only contain"),
    (edit(ROUTE, f"{_M}.method.method", "a" * 1025), "no more than 1024"),
    (edit(ROUTE, f"{_M}.method.type", "Prefix"), 'unsupported value "Prefix"'),
    (
        edit(ROUTE, f"{_M}.method", {"type": "RegularExpression", "method": "(a)\\1"}),
        "backreferences",
    ),
    (
        edit(ROUTE, f"{_M}.method", {"type": "RegularExpression", "service": "(?=x)"}),
        "lookahead",
    ),
    (edit(ROUTE, f"{_M}.headers[0].name", "bad name"), "headers[0].name"),
    (edit(ROUTE, f"{_M}.headers[0].value", ""), "must be 1 to 4096 characters"),
    (
        edit(ROUTE, f"{_M}.headers", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "duplicate value",
    ),
    (
        edit(
            ROUTE, f"{_M}.headers[0]", {"name": "x", "value": "(?!a)", "type": "RegularExpression"}
        ),
        "negative lookahead",
    ),
    (edit(ROUTE, "spec.rules[0].matches", [{}] * 9), "at most 8"),
    (edit(ROUTE, "spec.rules", [{}] * 17), "at most 16"),
    (edit(ROUTE, "spec.rules[1].name", "hello"), 'duplicate value "hello"'),
    (
        edit(
            ROUTE,
            "spec.rules[0].filters[0]",
            {"type": "URLRewrite", "urlRewrite": {"hostname": "a.example.com"}},
        ),
        'unsupported value "URLRewrite" for a GRPCRoute filter',
    ),
    (
        edit(
            ROUTE,
            "spec.rules[0].filters[1]",
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"remove": ["x"]}},
        ),
        "RequestHeaderModifier filter cannot be repeated",
    ),
    (
        edit(ROUTE, "spec.rules[0].filters[0].requestHeaderModifier", DELETE),
        "requestHeaderModifier: required",
    ),
    (edit(ROUTE, "spec.rules[0].backendRefs[0].port", DELETE), "port"),
    (edit(ROUTE, "spec.rules[0].backendRefs[0].weight", -1), "backendRefs[0].weight"),
    (edit(ROUTE, "spec.hostnames", ["10.0.0.1"]), "hostnames[0]"),
    (
        edit(
            ROUTE,
            "spec.parentRefs[1]",
            {"name": "edge", "namespace": "infra", "sectionName": "grpc"},
        ),
        "duplicates parentRefs[0]",
    ),
    (edit(ROUTE, "apiVersion", "gateway.networking.k8s.io/v1beta1"), "unsupported apiVersion"),
    (edit(ROUTE, "spec", DELETE), "spec: required"),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_invalid_routes_name_route_and_field(doc: dict[str, Any], message: str) -> None:
    error = error_of(doc)
    assert error.startswith("GRPCRoute shop/greeter: spec") or "apiVersion" in error
    assert message in error
