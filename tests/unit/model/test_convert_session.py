"""A route rule's sessionPersistence (GEP-1619, v1.6.1): reading, defaults, the CRD's CEL
rules, and the names the waypoint refuses to put on the wire."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import (
    CookieConfig,
    CookieLifetimeType,
    HTTPRoute,
    SessionPersistence,
    SessionPersistenceType,
)
from tests.unit.model.helpers import edit, error_of, round_trip

HTTP: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "cart", "namespace": "shop"},
    "spec": {"rules": [{"backendRefs": [{"name": "cart", "port": 8080}]}]},
}
GRPC: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GRPCRoute",
    "metadata": {"name": "cart", "namespace": "shop"},
    "spec": {"rules": [{"backendRefs": [{"name": "cart", "port": 8080}]}]},
}
AT = "spec.rules[0].sessionPersistence"


def http_with(value: Any) -> dict[str, Any]:
    return edit(HTTP, AT, value)


def test_defaults_cookie_session_lifetime() -> None:
    route = round_trip(http_with({}))
    assert isinstance(route, HTTPRoute)
    spec = route.spec.rules[0].session_persistence
    assert spec == SessionPersistence()
    assert spec.type is SessionPersistenceType.COOKIE
    assert spec.lifetime_type is CookieLifetimeType.SESSION


def test_every_field_round_trips() -> None:
    route = round_trip(http_with({
        "sessionName": "cart-session",
        "absoluteTimeout": "5m",
        "type": "Cookie",
        "cookieConfig": {"lifetimeType": "Permanent"},
    }))
    assert isinstance(route, HTTPRoute)
    assert route.spec.rules[0].session_persistence == SessionPersistence(
        session_name="cart-session",
        absolute_timeout=timedelta(minutes=5),
        cookie_config=CookieConfig(CookieLifetimeType.PERMANENT),
    )


def test_grpc_rule_reads_it_too() -> None:
    doc = edit(GRPC, AT, {"type": "Header", "sessionName": "x-session"})
    route = round_trip(doc)
    assert isinstance(route, GRPCRoute)
    spec = route.spec.rules[0].session_persistence
    assert spec is not None and spec.type is SessionPersistenceType.HEADER
    assert spec.session_name == "x-session"


def test_no_session_persistence_is_none() -> None:
    route = round_trip(HTTP)
    assert isinstance(route, HTTPRoute)
    assert route.spec.rules[0].session_persistence is None


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({"cookieConfig": {"lifetimeType": "Permanent"}}, "absoluteTimeout",
         "AbsoluteTimeout must be specified when cookie lifetimeType is Permanent"),
        ({"type": "Header", "cookieConfig": {}}, "cookieConfig",
         "cookieConfig can only be set with type Cookie"),
        ({"type": "Sticky"}, "type", "Sticky"),
        ({"cookieConfig": {"lifetimeType": "Forever"}}, "cookieConfig.lifetimeType", "Forever"),
        ({"absoluteTimeout": "soon"}, "absoluteTimeout", "soon"),
        ({"absoluteTimeout": "0s"}, "absoluteTimeout", "must be greater than 0"),
        ({"sessionName": ""}, "sessionName", "1 to 128"),
        ({"sessionName": "a" * 129}, "sessionName", "1 to 128"),
        ({"sessionName": "bad name;"}, "sessionName", "HTTP header name"),
        ({"sessionName": "x\r\nSet-Cookie: a=b"}, "sessionName", "HTTP header name"),
        ({"type": "Header", "sessionName": "Content-Length"}, "sessionName", "framing"),
        ({"type": "Header", "sessionName": "set-cookie"}, "sessionName", "framing"),
        ({"type": "Header", "sessionName": "grpc-status"}, "sessionName", "gRPC"),
        ({"idleTimeout": "1m"}, "idleTimeout", "removed idleTimeout"),
    ],
)
def test_invalid_values_name_the_field(value: dict[str, Any], field: str, message: str) -> None:
    error = error_of(http_with(value))
    assert f"{AT}.{field}" in error
    assert message in error


def test_grpc_invalid_value_names_the_field() -> None:
    error = error_of(edit(GRPC, AT, {"type": "Header", "cookieConfig": {}}))
    assert f"{AT}.cookieConfig" in error


def test_a_cookie_may_take_a_name_a_header_may_not() -> None:
    """Cookie names are their own namespace: "set-cookie" as a cookie name is harmless."""
    route = round_trip(http_with({"sessionName": "set-cookie"}))
    assert isinstance(route, HTTPRoute)
