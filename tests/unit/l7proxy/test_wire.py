"""Issue 9, item 4: heads are checked where they are serialized. Whatever got past
admission and the parsers, a CR, LF or NUL in a start line, name or value raises
UnsafeHead instead of going out as an extra header line (or a second request)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayapi import Headers, Request
from l7proxy.exchange import Exchange, RequestBody, upstream_head
from l7proxy.http.parser import BodyKind
from l7proxy.http.wire import UnsafeHead, request_head, response_head

INJECTIONS = ["v\r\nx-injected: 1", "v\nx-injected: 1", "v\rx", "v\x00"]


def _exchange(headers: list[tuple[bytes, bytes]]) -> Exchange:
    return Exchange(
        "GET",
        "/a",
        "example.com",
        headers,
        RequestBody(BodyKind.NONE, None, 1 << 20),
        None,
        ("10.0.0.1", 40000),
        ("10.0.0.2", 80),
        started=0.0,
        started_ns=0,
    )


def test_upstream_head_of_a_clean_request() -> None:
    ex = _exchange([(b"accept", b"*/*")])
    request = Request("GET", "http", "example.com", "/a?b=1", Headers([("accept", "*/*")]))
    head, chunked = upstream_head(ex, request)
    assert not chunked
    assert head == (
        b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\naccept: */*\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"
    )


@pytest.mark.parametrize("value", INJECTIONS)
def test_upstream_head_refuses_an_injected_header_value(value: str) -> None:
    request = Request("GET", "http", "example.com", "/a", Headers([("x-edited", value)]))
    with pytest.raises(UnsafeHead):
        upstream_head(_exchange([]), request)


@pytest.mark.parametrize(
    ("method", "target", "authority"),
    [
        ("GET /admin", "/a", "example.com"),
        ("GET", "/a HTTP/1.0\r\nx: 1", "example.com"),
        ("GET", "/a b", "example.com"),
        ("GET", "/a", "example.com\r\nx-injected: 1"),
    ],
)
def test_upstream_head_refuses_a_split_request_line_or_host(
    method: str, target: str, authority: str
) -> None:
    with pytest.raises(UnsafeHead):
        upstream_head(_exchange([]), Request(method, "http", authority, target))


@pytest.mark.parametrize("value", INJECTIONS)
def test_response_head_refuses_an_injected_value(value: str) -> None:
    with pytest.raises(UnsafeHead):
        response_head(200, b"OK", [(b"x-resp", value.encode("latin-1"))])
    with pytest.raises(UnsafeHead):
        response_head(200, b"OK", [(value.encode("latin-1"), b"v")])


def test_request_head_refuses_injection_and_keeps_clean_heads() -> None:
    assert request_head("GET", "/a", ["Host: x"]) == b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    with pytest.raises(UnsafeHead):
        request_head("GET", "/a", ["Host: x\r\nx-injected: 1"])


FIELD = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12)


@given(name=FIELD, value=FIELD)
def test_response_head_has_one_line_per_field_or_refuses(name: str, value: str) -> None:
    try:
        head = response_head(200, b"OK", [(name.encode("latin-1"), value.encode("latin-1"))])
    except UnsafeHead:
        assert any(c in name + value for c in "\r\n\x00")
        return
    assert head.split(b"\r\n")[1:] == [f"{name}: {value}".encode("latin-1"), b"", b""]
