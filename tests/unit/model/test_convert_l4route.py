"""Converter tests for TCPRoute and UDPRoute (v1): every field, CRD defaults, and the CRD's
bounds (1..16 rules, 1..16 backendRefs, weight 0..1000000, a Service backend needs a port)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.l4route import TCPRoute, UDPRoute
from tests.unit.model.helpers import DELETE, edit, error_of, round_trip


def _route(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "edge", "namespace": "infra", "sectionName": "pg"}],
            "rules": [
                {
                    "name": "split",
                    "backendRefs": [
                        {"name": "db-v1", "port": 5432, "weight": 90},
                        {"name": "db-v2", "namespace": "other", "port": 5432, "weight": 10},
                    ],
                },
                {"backendRefs": [{"name": "db-v3", "port": 5432}]},
            ],
        },
    }


@pytest.mark.parametrize(("kind", "cls"), [("TCPRoute", TCPRoute), ("UDPRoute", UDPRoute)])
def test_route_reads_every_field_and_round_trips(kind: str, cls: type) -> None:
    route = round_trip(_route(kind))
    assert isinstance(route, cls)
    assert route.spec.parent_refs[0].section_name == "pg"
    split, plain = route.spec.rules
    assert split.name == "split"
    assert [(b.name, b.namespace, b.port, b.weight) for b in split.backend_refs] == [
        ("db-v1", None, 5432, 90),
        ("db-v2", "other", 5432, 10),
    ]
    assert plain.backend_refs[0].weight == 1  # the CRD's default
    assert (plain.backend_refs[0].group, plain.backend_refs[0].kind) == ("", "Service")


def test_v1alpha2_is_read_too() -> None:
    route = round_trip(edit(_route("TCPRoute"), "apiVersion", "gateway.networking.k8s.io/v1alpha2"))
    assert isinstance(route, TCPRoute)


ERRORS: list[tuple[str, Any, str]] = [
    ("spec.rules", [], "at least 1"),
    ("spec.rules", DELETE, "spec.rules: required"),
    ("spec.rules", [{"backendRefs": [{"name": "a", "port": 1}]}] * 17, "at most 16"),
    ("spec.rules[0].backendRefs", [], "at least 1"),
    ("spec.rules[0].backendRefs[0].weight", -1, "between 0 and 1000000, got -1"),
    ("spec.rules[0].backendRefs[0].weight", 1_000_001, "got 1000001"),
    ("spec.rules[0].backendRefs[0].port", DELETE, "port"),
    ("spec.rules[0].backendRefs[0].port", 0, "between 1 and 65535"),
    ("spec.rules[1].name", "split", "name"),
    ("spec", DELETE, "required"),
]


@pytest.mark.parametrize("kind", ["TCPRoute", "UDPRoute"])
@pytest.mark.parametrize(("path", "value", "message"), ERRORS)
def test_invalid_routes_are_refused_naming_the_field(
    kind: str, path: str, value: Any, message: str
) -> None:
    error = error_of(edit(_route(kind), path, value))
    assert error.startswith(f"{kind} shop/db: ")
    assert message in error
