"""The CONNECT head parser (l7proxy/hbone/connecthead.py): table tests for each rule and
Hypothesis at the boundary: any field list is either parsed or refused with HeadError,
never another exception, and a head the sending end writes parses back to itself."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7proxy.hbone.connecthead import (
    MAX_FIELDS,
    ConnectHead,
    HeadError,
    connect_fields,
    parse_connect,
)

GOOD = [
    (b":method", b"CONNECT"),
    (b":authority", b"10.0.1.7:8080"),
    (b"forwarded", b'for="10.0.0.5:43210"'),
]


def with_(*changes: tuple[bytes, bytes | None]) -> list[tuple[bytes, bytes]]:
    fields = dict(GOOD)
    for name, value in changes:
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return list(fields.items())


def test_a_good_head() -> None:
    assert parse_connect(GOOD) == ConnectHead(("10.0.1.7", 8080), ("10.0.0.5", 43210))


def test_istio_forwarded_form_without_port_and_extra_fields() -> None:
    head = parse_connect(
        with_((b"forwarded", b"for=10.0.0.5;proto=http, for=10.9.9.9"), (b"baggage", b"k=v"))
    )
    assert head.source == ("10.0.0.5", 0)


@pytest.mark.parametrize(
    ("fields", "status", "words"),
    [
        (with_((b":method", b"GET")), 405, "only CONNECT"),
        (with_((b":method", None)), 400, "no :method"),
        (with_((b":authority", None)), 400, "no :authority"),
        (with_((b":scheme", b"https")), 400, ":scheme"),
        (with_((b":path", b"/")), 400, ":path"),
        (with_((b":protocol", b"websocket")), 400, ":protocol"),
        (with_((b":authority", b"db.shop.svc:80")), 400, "not an IPv4"),
        (with_((b":authority", b"[::1]:80")), 400, "not an IPv4"),
        (with_((b":authority", b"010.0.1.7:80")), 400, "not an IPv4"),
        (with_((b":authority", b"10.0.1.7")), 400, "no port"),
        (with_((b":authority", b"10.0.1.7:0")), 400, "out of range"),
        (with_((b":authority", b"10.0.1.7:65536")), 400, "out of range"),
        (with_((b":authority", b"10.0.1.7:+80")), 400, "not a number"),
        (with_((b"forwarded", None)), 400, "0 forwarded"),
        (with_((b"forwarded", b"by=10.0.0.1")), 400, "no 'for'"),
        (with_((b"forwarded", b"for=10.0.0.5;for=10.0.0.6")), 400, "two 'for'"),
        (with_((b"forwarded", b"for=unknown")), 400, "not an IPv4"),
        (with_((b"forwarded", b"for")), 400, "not name=value"),
        (with_((b"connection", b"close")), 400, "connection-specific"),
        (with_((b"x-evil", b"a\r\nb")), 400, "NUL, CR or LF"),
        (with_((b"x-pad", b" a")), 400, "whitespace"),
        (with_((b"X-Upper", b"a")), 400, "lowercase token"),
        ([GOOD[0], GOOD[0], GOOD[1], GOOD[2]], 400, "twice"),
        ([GOOD[2], GOOD[0], GOOD[1]], 400, "after a regular field"),
        (GOOD + [(b"forwarded", b"for=10.0.0.6")], 400, "2 forwarded"),
        (GOOD + [(b"x-%d" % i, b"v") for i in range(MAX_FIELDS)], 431, "over"),
        (with_((b"x-big", b"v" * 20000)), 431, "over"),
        (with_((b":authority", b"\xff:80")), 400, "non-ASCII"),
    ],
)
def test_refusals(fields: list[tuple[bytes, bytes]], status: int, words: str) -> None:
    with pytest.raises(HeadError) as err:
        parse_connect(fields)
    assert err.value.status == status
    assert words in str(err.value)


ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
port = st.integers(1, 65535)


@given(ipv4, port, ipv4, st.integers(0, 65535))
def test_what_the_sender_writes_parses_back(dst: str, dport: int, src: str, sport: int) -> None:
    head = parse_connect(connect_fields((dst, dport), (src, sport)))
    assert head.destination == (dst, dport)
    assert head.source == ((src, sport) if sport else (src, 0))


field_name = st.one_of(
    st.sampled_from([b":method", b":authority", b":scheme", b":path", b"forwarded", b"te"]),
    st.binary(max_size=12),
)
field_value = st.one_of(
    st.sampled_from([b"CONNECT", b"10.0.0.1:80", b"for=10.0.0.2", b'for="10.0.0.2:1"']),
    st.binary(max_size=40),
)


@settings(max_examples=400)
@given(st.lists(st.tuples(field_name, field_value), max_size=12))
def test_any_head_is_parsed_or_refused_never_a_crash(fields: list[tuple[bytes, bytes]]) -> None:
    try:
        head = parse_connect(fields)
    except HeadError as err:
        assert err.status in (400, 405, 431)
        return
    # accepted: then it really is a CONNECT to an IPv4 address and a valid port
    assert (b":method", b"CONNECT") in fields
    ipaddress.IPv4Address(head.destination[0])
    assert 0 < head.destination[1] < 65536
    assert not {name for name, _ in fields} & {b":scheme", b":path", b"te"}


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_any_text_authority_or_forwarded(text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    for fields in (with_((b":authority", raw)), with_((b"forwarded", raw))):
        try:
            parse_connect(fields)
        except HeadError:
            pass
