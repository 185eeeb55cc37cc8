"""HTTP/2 request heads (``l7proxy.h2head``): RFC 9113 8.2/8.3 checks, and the property
that whatever passes them makes an HTTP/1.1 head a strict parser reads back unchanged."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayapi import Headers, Request
from l7proxy.exchange import Exchange, RequestBody, upstream_head
from l7proxy.h2head import H2Request, Malformed, Unsupported, parse_request
from l7proxy.http.parser import BodyKind, RequestHead, RequestParser

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com")]


def block(path: bytes = b"/", *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [*BASE, (b":path", path), *extra]


def test_a_plain_request_passes() -> None:
    head = parse_request(
        [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"Svc.NS:8080"),
            (b":path", b"/a/b?c=d&e=%20"),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"content-length", b"5"),
            (b"x-v", b"a b\tc"),
        ]
    )
    assert head == H2Request(
        "POST",
        "/a/b?c=d&e=%20",
        "svc.ns:8080",
        "http",
        [
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"content-length", b"5"),
            (b"x-v", b"a b\tc"),
        ],
        5,
    )


@pytest.mark.parametrize(
    "headers",
    [
        [(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"*")],
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h:80")],
        [*block(), (b"host", b"example.com")],
        block(b"/", (b"x-empty", b"")),
        [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"[::1]:443"),
            (b":path", b"/"),
        ],
    ],
)
def test_accepted_forms(headers: list[tuple[bytes, bytes]]) -> None:
    parse_request(headers)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (block(b"/a b"), ":path"),
        (block(b"/a\x7f"), ":path"),
        (block(b"/caf\xc3\xa9"), ":path"),
        (block(b"*"), ":path"),
        (block(b""), ":path"),
        (block(b"a"), ":path"),
        (
            [
                (b":method", b"G\x00T"),
                (b":scheme", b"http"),
                (b":authority", b"h"),
                (b":path", b"/"),
            ],
            ":method",
        ),
        (
            [(b":method", b""), (b":scheme", b"http"), (b":authority", b"h"), (b":path", b"/")],
            ":method",
        ),
        (
            [(b":method", b"GET"), (b":scheme", b"1ttp"), (b":authority", b"h"), (b":path", b"/")],
            ":scheme",
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"u@h"),
                (b":path", b"/"),
            ],
            ":authority",
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"h:99999"),
                (b":path", b"/"),
            ],
            ":authority",
        ),
        (
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b":authority", b"h h"),
                (b":path", b"/"),
            ],
            ":authority",
        ),
        ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")], ":authority"),
        (block(b"/", (b"x-a", b" lead")), "edge whitespace"),
        (block(b"/", (b"x-a", b"bell\x07")), "control character"),
        (block(b"/", (b"x a", b"1")), "token"),
        (block(b"/", (b"", b"1")), "token"),
        (block(b"/", (b"keep-alive", b"1")), "connection-specific"),
        (block(b"/", (b"upgrade", b"h2c")), "connection-specific"),
        (block(b"/", (b"content-length", b"1"), (b"content-length", b"2")), "content-length"),
        (block(b"/", (b"content-length", b"-1")), "content-length"),
        (block(b"/", (b"host", b"a"), (b"host", b"a")), "more than one host"),
        ([*BASE, (b":path", b"/"), (b":path", b"/")], "duplicate"),
    ],
)
def test_malformed_heads_name_the_problem(headers: list[tuple[bytes, bytes]], message: str) -> None:
    with pytest.raises(Malformed, match=message):
        parse_request(headers)


def test_connect_is_well_formed_but_unsupported() -> None:
    with pytest.raises(Unsupported, match="CONNECT"):
        parse_request([(b":method", b"CONNECT"), (b":authority", b"h:443")])


def test_header_count_is_capped() -> None:
    with pytest.raises(Malformed, match="more than 3"):
        parse_request(block(b"/", *[(b"x-%d" % i, b"v") for i in range(4)]), max_headers=3)


# --- the property: nothing a client sends can shape the upstream request line -----------------

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
DANGER = b" \t\r\n\x00\x0b\x7f#@/:[]\xff"
_bytes = st.binary(max_size=12) | st.lists(
    st.sampled_from([bytes([c]) for c in DANGER] + [b"a", b"/", b"GET", b"1", b"."]), max_size=8
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(
    method=_bytes,
    path=_bytes.map(lambda b: b"/" + b) | _bytes,
    authority=_bytes,
    extra=st.lists(st.tuples(_bytes, _bytes), max_size=3),
)
def test_nothing_unsafe_reaches_an_upstream_request_line(
    method: bytes, path: bytes, authority: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        (b":method", method),
        (b":scheme", b"http"),
        (b":authority", authority),
        (b":path", path),
        *extra,
    ]
    try:
        head = parse_request(headers)
    except (Malformed, Unsupported):  # refused with a clear error: nothing reaches upstream
        return
    body = RequestBody(BodyKind.NONE, None, 1024)
    ex = Exchange(
        head.method,
        head.path,
        head.authority,
        head.headers,
        body,
        None,
        ("10.0.0.1", 1234),
        ("10.0.0.2", 80),
        started=0.0,
        started_ns=0,
    )
    routed = Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers])
    ex.routed_headers = routed
    wire, _ = upstream_head(ex, Request(head.method, "http", head.authority, head.path, routed))
    line = wire.split(b"\r\n", 1)[0]
    assert line.count(b" ") == 2 and not any(c < 0x21 and c != 0x20 or c == 0x7F for c in line)
    method_bytes = head.method.encode()
    assert TOKEN.fullmatch(method_bytes) and wire.startswith(method_bytes + b" ")
    # llhttp knows a fixed list of methods: read the rest back under GET
    [parsed] = [
        e
        for e in RequestParser().feed(b"GET" + wire[len(method_bytes) :])
        if isinstance(e, RequestHead)
    ]
    assert parsed.target == head.path
    assert parsed.authority == head.authority
    assert len(parsed.headers) == len(wire.split(b"\r\n")) - 3  # one field per line
