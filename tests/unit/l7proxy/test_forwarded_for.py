"""Issue 15, item 1 (Client IP): X-Forwarded-For carries the real client address. Through
a Gateway a client's own X-Forwarded-For is replaced (anyone outside can forge it) unless
the waypoint is told to trust it (``--trust-forwarded-for``: appended, RFC 7239's chain);
mesh traffic (a Service parent) keeps appending."""

from __future__ import annotations

import pytest

from gatewayapi import GatewayParent, Headers, Request, ServiceParent
from l7proxy.exchange import (
    Exchange,
    RequestBody,
    appends_forwarded_for,
    forwarded_for,
    upstream_head,
)
from l7proxy.http.parser import BodyKind

GATEWAY = GatewayParent("edge", "public", 80)
SERVICE = ServiceParent("shop", "web", 80)
FORGED = [(b"X-Forwarded-For", b"6.6.6.6"), (b"x-forwarded-for", b"7.7.7.7")]


def _head(parent, trust: bool = False) -> bytes:
    ex = Exchange("GET", "/", "shop.example", FORGED, RequestBody(BodyKind.NONE, None, 1 << 20),
                  parent, ("203.0.113.9", 40000), ("10.240.0.241", 80), started=0.0, started_ns=0)
    request = Request("GET", "http", "shop.example", "/",
                      Headers([(n.decode(), v.decode()) for n, v in FORGED]))
    head, _ = upstream_head(ex, request, trust)
    [line] = [x for x in head.split(b"\r\n") if x.lower().startswith(b"x-forwarded-for")]
    return line.partition(b": ")[2]


def test_through_a_gateway_a_forged_header_is_replaced_by_the_client_address() -> None:
    assert _head(GATEWAY) == b"203.0.113.9"


def test_a_trusted_gateway_appends_to_the_chain_in_order() -> None:
    assert _head(GATEWAY, trust=True) == b"6.6.6.6, 7.7.7.7, 203.0.113.9"


@pytest.mark.parametrize("parent", [SERVICE, None])
def test_mesh_traffic_appends(parent) -> None:
    assert _head(parent) == b"6.6.6.6, 7.7.7.7, 203.0.113.9"


def test_the_rule_and_the_value() -> None:
    assert not appends_forwarded_for(GATEWAY, False)
    assert appends_forwarded_for(GATEWAY, True) and appends_forwarded_for(SERVICE, False)
    assert forwarded_for(b"", b"1.2.3.4", True) == b"1.2.3.4"
    assert forwarded_for(b"9.9.9.9", b"1.2.3.4", False) == b"1.2.3.4"
