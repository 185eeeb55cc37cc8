"""The checks that replace the ``h2`` library's own header checks (turned off for their
cost per call): an h2c backend's response heads and trailers (``response_problem``), the
backstop on heads the waypoint sends (``unsendable``), cookie crumbs joined on the way in."""

from __future__ import annotations

import pytest
from hpack import NeverIndexedHeaderTuple

from l7proxy.h2head import Malformed, parse_request, response_problem, unsendable
from l7proxy.h2stream import field, fields

OK = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-v", b"a b\tc")]


def test_a_well_formed_head_and_trailers_pass() -> None:
    assert response_problem(OK) is None
    assert response_problem([(b":status", b"204"), (b"x-empty", b"")]) is None
    assert response_problem([(b"grpc-status", b"0"), (b"te", b"Trailers")], trailers=True) is None
    assert response_problem([], trailers=True) is None


@pytest.mark.parametrize(
    ("block", "trailers", "problem"),
    [
        ([(b"content-type", b"x")], False, ":status missing"),
        ([(b":status", b"20")], False, "three-digit"),
        ([(b":status", b"abc")], False, "three-digit"),
        ([(b":status", b"099")], False, "three-digit"),
        ([(b":status", b"200"), (b":status", b"200")], False, "duplicate :status"),
        ([(b"x", b"1"), (b":status", b"200")], False, "after a regular field"),
        ([(b":status", b"200"), (b":path", b"/")], False, "in a response"),
        ([(b":status", b"200")], True, "in trailers"),
        ([(b":status", b"200"), (b"X-Up", b"1")], False, "lowercase token"),
        ([(b":status", b"200"), (b"", b"1")], False, "lowercase token"),
        ([(b":status", b"200"), (b"a:b", b"1")], False, "lowercase token"),
        ([(b":status", b"200"), (b"x", b"a\r\nb")], False, "control character"),
        ([(b":status", b"200"), (b"x", b"a\x00")], False, "control character"),
        ([(b":status", b"200"), (b"x", b"\x01")], False, "control character"),
        ([(b":status", b"200"), (b"x", b"a ")], False, "edge whitespace"),
        ([(b"x", b"\ta")], True, "edge whitespace"),
        ([(b":status", b"200"), (b"keep-alive", b"5")], False, "connection-specific"),
        ([(b"transfer-encoding", b"chunked")], True, "connection-specific"),
        ([(b":status", b"200"), (b"te", b"gzip")], False, "te other than"),
    ],
)
def test_malformed_response_blocks_name_the_problem(
    block: list[tuple[bytes, bytes]], trailers: bool, problem: str
) -> None:
    found = response_problem(block, trailers=trailers)
    assert found is not None and problem in found


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ([(b":status", b"200"), (b"connection", b"close")], "connection-specific"),
        ([(b":status", b"200"), (b"te", b"gzip")], "connection-specific"),
        ([(b":status", b"200"), (b":status", b"200")], "misplaced"),
        ([(b"x", b"1"), (b":status", b"200")], "misplaced"),
        ([(b":path", b"/")], "misplaced"),
    ],
)
def test_a_head_h2_would_have_refused_is_not_sent(
    block: list[tuple[bytes, bytes]], problem: str
) -> None:
    found = unsendable(block)
    assert found is not None and problem in found


def test_a_head_the_waypoint_builds_is_sendable() -> None:
    assert unsendable([(b":status", b"200"), (b"te", b"trailers"), (b"x", b"1")]) is None


def test_secrets_are_never_indexed_as_h2_marked_them() -> None:
    assert isinstance(field(b"authorization", b"Bearer x"), NeverIndexedHeaderTuple)
    assert isinstance(field(b"proxy-authorization", b"x"), NeverIndexedHeaderTuple)
    assert isinstance(field(b"cookie", b"short=1"), NeverIndexedHeaderTuple)
    assert not isinstance(field(b"cookie", b"long=" + b"x" * 20), NeverIndexedHeaderTuple)
    assert not isinstance(field(b"x-v", b"1"), NeverIndexedHeaderTuple)
    out = fields([(b"Authorization", b"b"), (b"Connection", b"close"), (b"X-A", b"1")])
    assert out == [(b"authorization", b"b"), (b"x-a", b"1")]
    assert isinstance(out[0], NeverIndexedHeaderTuple)


BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a")]


def test_cookie_crumbs_are_joined_into_one_last_field() -> None:
    head = parse_request([*BASE, (b"cookie", b"a=1"), (b"x", b"1"), (b"cookie", b"b=2")])
    assert head.headers == [(b"x", b"1"), (b"cookie", b"a=1; b=2")]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([*BASE, (b"cookie", b"a=1\r\nx: y")], "control character"),
        ([*BASE, (b"cookie", b" a=1")], "edge whitespace"),
        ([*BASE[:3], (b"cookie", b"a=1"), BASE[3]], "after a regular field"),
    ],
)
def test_malformed_cookie_crumbs_are_refused(
    block: list[tuple[bytes, bytes]], message: str
) -> None:
    with pytest.raises(Malformed, match=message):
        parse_request(block)
