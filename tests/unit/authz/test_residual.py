"""The compiled policies narrowed to a connection give the reference evaluator's verdict for
every request on it: over generated policies (as in test_compiled), connections (caller,
endpoint, port, SNI) and several HTTP requests per connection that differ in method, host,
path and headers (raw, as the proxy read them, in any case)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.model.authz import AuthorizationPolicy
from authz import Peer, Request, compile_policies, evaluate
from authz.residual import Connection, connection_facts, narrow, pick_headers
from tests.unit.authz.helpers import TD, policy, rule
from tests.unit.authz.test_compiled import IPS, PEERS, policies

CONNECTIONS = st.builds(Connection, peer=PEERS, destination_ip=st.sampled_from(IPS),
                        port=st.sampled_from([80, 8080, 443, 0]),
                        sni=st.sampled_from(["api.shop", "x.shop", ""]))
RAW_HEADERS = st.lists(st.tuples(st.sampled_from([b"x-a", b"X-A", b"X-B", b"x-b", b"x-c"]),
                                 st.sampled_from([b"v1", b"V1", b"w1", b""])), max_size=4)
HTTP = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "get", ""]),
    st.sampled_from(["api.shop", "API.SHOP:8080", "x.shop", "[::1]:80", "", "x.shop:8080"]),
    st.sampled_from(["/", "/admin", "/api/v1", "/x/.env", "/x/admin", ""]),
    RAW_HEADERS,
)


def _reference(found: list[AuthorizationPolicy], c: Connection, method: str, host: str,
               path: str, raw: list[tuple[bytes, bytes]]) -> Request:
    headers = Request.headers_of([(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw])
    return Request(c.peer, c.destination_ip, c.port, host, method, path, headers, c.sni)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), CONNECTIONS, st.lists(HTTP, min_size=1, max_size=6))
def test_the_narrowed_policies_are_the_reference_evaluator(
        found: list[AuthorizationPolicy], connection: Connection,
        requests: list[tuple[str, str, str, list[tuple[bytes, bytes]]]]) -> None:
    """Each request of a keep-alive connection gets its own verdict from one residual."""
    residual = narrow(compile_policies(found), connection)
    for method, host, path, raw in requests:
        headers = pick_headers(raw, residual.header_names)
        want = evaluate(found, _reference(found, connection, method, host, path, raw))
        assert residual.evaluate(method, host, path, headers) == want, (method, host, path, raw)


def test_connection_facts_are_decided_once_and_request_facts_each_time() -> None:
    """Per connection: a caller outside a rule's source drops it (its path test never runs);
    per request: the same connection's requests differ in path, method and header."""
    found = [
        policy("deny-admin", {"action": "DENY", "rules": [rule(operation={"paths": ["/admin"]})]}),
        policy("deny-debug", {"action": "DENY", "rules": [
            rule(when=[{"key": "request.headers[X-Debug]", "values": ["*"]}])]}),
        policy("front-gets", {"rules": [rule(source={"namespaces": ["front"]},
                                             operation={"methods": ["GET"]})]}),
    ]
    compiled = compile_policies(found)
    front = narrow(compiled, Connection(_peer("front"), "10.2.0.9", 8080))
    back = narrow(compiled, Connection(_peer("back"), "10.2.0.9", 8080))
    assert front.header_names == frozenset({"x-debug"})
    assert front.evaluate("GET", "api", "/x").allowed
    assert front.evaluate("GET", "api", "/admin").policies == ("shop/deny-admin",)
    assert not front.evaluate("POST", "api", "/x").allowed
    debug = pick_headers([(b"X-DEBUG", b"1")], front.header_names)
    assert front.evaluate("GET", "api", "/x", debug).policies == ("shop/deny-debug",)
    assert front.evaluate("GET", "api", "/x").allowed  # the next request is its own
    assert back.evaluate("GET", "api", "/x").by_allow  # no ALLOW for this caller


def _peer(namespace: str) -> Peer:
    return Peer.of_pod("10.1.0.5", TD, namespace, "web")


@pytest.mark.parametrize("raw", [
    [(b"X-A", b"v1"), (b"x-a", b"v2"), (b"x-b", b"w")],
    [(b"x-\xc0", b"\xff"), (b"X-A", b"")],
])
def test_pick_headers_keeps_only_the_read_names_as_headers_of_does(
        raw: list[tuple[bytes, bytes]]) -> None:
    full = Request.headers_of([(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw])
    names = frozenset({"x-a", "x-\xe0"})
    assert pick_headers(raw, names) == {k: v for k, v in full.items() if k in names}
    assert pick_headers(raw, frozenset()) == {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), CONNECTIONS, CONNECTIONS, st.lists(HTTP, min_size=1, max_size=4))
def test_connections_with_the_same_key_may_share_a_residual(
        found: list[AuthorizationPolicy], one: Connection, other: Connection,
        requests: list[tuple[str, str, str, list[tuple[bytes, bytes]]]]) -> None:
    """``connection_facts`` keeps every fact a rule reads: one connection's residual gives
    the reference verdicts of another with the same key."""
    compiled = compile_policies(found)
    if connection_facts(compiled, one) != connection_facts(compiled, other):
        return
    residual = narrow(compiled, one)
    for method, host, path, raw in requests:
        headers = pick_headers(raw, residual.header_names)
        want = evaluate(found, _reference(found, other, method, host, path, raw))
        assert residual.evaluate(method, host, path, headers) == want


def test_the_key_keeps_what_is_read_and_drops_what_is_not() -> None:
    by_namespace = compile_policies([policy("p", {"rules": [rule(source={"namespaces": ["front"]})]})])
    by_address = compile_policies([policy("p", {"rules": [rule(source={"ipBlocks": ["10.0.0.0/8"]})]})])
    here, there = (Connection(Peer.of_pod(ip, TD, "front", "web"), "10.2.0.9", 80)
                   for ip in ("10.1.0.5", "10.1.0.6"))
    assert connection_facts(by_namespace, here) == connection_facts(by_namespace, there)
    assert connection_facts(by_address, here) != connection_facts(by_address, there)
    elsewhere = Connection(Peer.of_pod("10.1.0.5", TD, "back", "web"), "10.2.0.9", 80)
    assert connection_facts(by_namespace, here) != connection_facts(by_namespace, elsewhere)
