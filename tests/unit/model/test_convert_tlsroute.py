"""Converter tests for TLSRoute (v1): every field, CRD defaults, and the CRD's validation
(bounds and CEL rules of gateway-api v1.6 apis/v1/tlsroute_types.go)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.kinds import resolve_kind
from agent.model.l4route import BackendRef
from agent.model.tlsroute import TLSRoute
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip

ROUTE: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "TLSRoute",
    "metadata": {"name": "db", "namespace": "shop"},
    "spec": {
        "parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "tls"}],
        "hostnames": ["db.example.com", "*.db.example.com"],
        "rules": [
            {
                "name": "only",
                "backendRefs": [
                    {"name": "db-a", "port": 5432, "weight": 3},
                    {"name": "db-b", "namespace": "other", "port": 5432},
                ],
            }
        ],
    },
}


def test_route_reads_every_field_and_round_trips() -> None:
    route = round_trip(ROUTE)
    assert isinstance(route, TLSRoute)
    assert route.spec.hostnames == ("db.example.com", "*.db.example.com")
    (rule,) = route.spec.rules
    assert rule.name == "only"
    assert rule.backend_refs == (
        BackendRef("db-a", port=5432, weight=3),
        BackendRef("db-b", namespace="other", port=5432, weight=1),
    )
    assert route.spec.parent_refs[0].section_name == "tls"


def test_tlsroute_is_a_known_kind_served_as_v1_only() -> None:
    info = resolve_kind("tlsroutes.gateway.networking.k8s.io")
    assert (info.kind, info.api_versions) == ("TLSRoute", ("gateway.networking.k8s.io/v1",))


ERRORS: list[tuple[dict[str, Any], str]] = [
    (edit(ROUTE, "spec.hostnames", DELETE), "spec.hostnames"),
    (edit(ROUTE, "spec.hostnames", []), "spec.hostnames"),
    (edit(ROUTE, "spec.hostnames", ["10.0.0.1"]), "not an IP address"),
    (edit(ROUTE, "spec.hostnames", ["a.*.example.com"]), "spec.hostnames[0]"),
    (edit(ROUTE, "spec.hostnames", ["Upper.example.com"]), "spec.hostnames[0]"),
    (edit(ROUTE, "spec.hostnames", [f"h{i}.example.com" for i in range(1025)]), "1024"),
    (edit(ROUTE, "spec.rules", DELETE), "spec.rules"),
    (edit(ROUTE, "spec.rules", []), "spec.rules"),
    (edit(ROUTE, "spec.rules", [ROUTE["spec"]["rules"][0]] * 2), "spec.rules"),
    (edit(ROUTE, "spec.rules[0].backendRefs", []), "spec.rules[0].backendRefs"),
    (edit(ROUTE, "spec.rules[0].backendRefs", [{"name": "x", "port": 1}] * 17), "16"),
    (edit(ROUTE, "spec.rules[0].backendRefs[0].port", DELETE), "port"),
    (edit(ROUTE, "spec.rules[0].backendRefs[0].weight", -1), "weight"),
    (edit(ROUTE, "spec.rules[0].backendRefs[0].weight", 1_000_001), "weight"),
    (edit(ROUTE, "spec", DELETE), "spec"),
]


@pytest.mark.parametrize(("doc", "fragment"), ERRORS)
def test_invalid_routes_are_refused_naming_the_field(doc: dict[str, Any], fragment: str) -> None:
    assert fragment in error_of(doc)


def test_a_tls_listener_must_say_its_mode() -> None:
    gateway = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "infra"},
        "spec": {"gatewayClassName": "tulle", "listeners": [
            {"name": "tls", "port": 443, "protocol": "TLS",
             "tls": {"certificateRefs": [{"name": "c"}]}}]},
    }
    assert "must be set for protocol TLS" in error_of(gateway)
    round_trip(edit(gateway, "spec.listeners[0].tls.mode", "Terminate"))
    round_trip(edit(gateway, "spec.listeners[0].tls", {"mode": "Passthrough"}))
