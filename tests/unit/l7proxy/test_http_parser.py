"""The sans-IO HTTP/1.1 layer as playbooks (bytes in, events out) and properties of the
parser boundary: arbitrary bytes never crash it, an invalid request never yields a head
to forward, and splitting the input anywhere gives the same events."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from l7proxy.http import END, BodyKind, ParseError, RequestHead, RequestParser, ResponseParser
from l7proxy.http.parser import Event, UpgradeData
from l7proxy.http.response import ResponseHead
from l7proxy.http.wire import chunk, end_to_end, error_response


def feed(*pieces: bytes) -> list[Event]:
    parser = RequestParser()
    return [event for piece in pieces for event in parser.feed(piece)]


def summary(events: list[Event]) -> list[object]:
    """Events in comparable form; body pieces joined (their split is not semantic)."""
    out: list[object] = []
    for event in events:
        if isinstance(event, RequestHead):
            out.append(
                (
                    "head",
                    event.method,
                    event.target,
                    event.authority,
                    event.keep_alive,
                    event.body,
                    tuple(event.headers),
                )
            )
        elif isinstance(event, bytes):
            if out and isinstance(out[-1], bytes):
                out[-1] += event
            else:
                out.append(event)
        elif isinstance(event, ParseError):
            out.append(("error", event.status))
        elif isinstance(event, UpgradeData):
            out.append(("upgrade",))
        else:
            out.append("end")
    return out


# --- playbooks ---------------------------------------------------------------------------


def test_get_request_head() -> None:
    [head, end] = feed(b"GET /a?b=1 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-A: 1\r\n\r\n")
    assert isinstance(head, RequestHead) and end is END
    assert (head.method, head.target, head.authority) == ("GET", "/a?b=1", "example.com:8080")
    assert head.keep_alive and head.body is BodyKind.NONE
    assert head.headers == [(b"Host", b"Example.COM:8080"), (b"X-A", b"1")]


def test_pipelined_requests_come_out_in_order_with_bodies() -> None:
    events = feed(
        b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    shape = summary(events)
    assert [s[2] for s in shape if isinstance(s, tuple)] == ["/1", "/2", "/3"]
    assert b"abc" in shape and b"xy" in shape and shape.count("end") == 3
    last = events[-2]
    assert isinstance(last, RequestHead) and not last.keep_alive


def test_nothing_is_read_after_a_request_that_closes() -> None:
    parser = RequestParser()
    first = parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert first[-1] is END
    assert parser.feed(b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n") == []


def test_http10_defaults_to_close_and_keep_alive_is_honoured() -> None:
    [head, _] = feed(b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(head, RequestHead) and not head.keep_alive and head.authority == ""
    [head, _] = feed(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert isinstance(head, RequestHead) and head.keep_alive


def test_expect_continue_is_flagged_and_the_body_waits() -> None:
    events = feed(
        b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    [head] = events
    assert isinstance(head, RequestHead) and head.expect_continue and head.content_length == 2


def test_upgrade_stops_parsing_and_hands_over_the_rest() -> None:
    events = feed(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05"
    )
    head, end, upgrade = events
    assert isinstance(head, RequestHead) and head.upgrade and end is END
    assert isinstance(upgrade, UpgradeData) and upgrade.data == b"\x81\x05"


def test_a_parse_error_drops_the_partial_request_but_keeps_earlier_ones() -> None:
    events = feed(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost : a\r\n\r\n")
    assert summary(events)[1:] == ["end", ("error", 400)]
    assert isinstance(events[0], RequestHead) and events[0].target == "/ok"


def test_header_limit_is_configurable() -> None:
    parser = RequestParser(max_header_bytes=100)
    [error] = parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 200 + b"\r\n\r\n")
    assert isinstance(error, ParseError) and error.status == 431
    assert parser.closed


def test_response_parser_skips_interim_and_handles_head_and_close_delimited() -> None:
    parser = ResponseParser()
    parser.start()
    events = parser.feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )
    assert isinstance(events[0], ResponseHead) and events[0].status == 201
    assert events[1:] == [b"ok", END] and parser.reusable
    parser.start(head=True)
    head, end = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert isinstance(head, ResponseHead) and head.length == 10 and end is END
    closing = ResponseParser()
    closing.start()
    [head, body] = closing.feed(b"HTTP/1.1 200 OK\r\n\r\nuntil close")
    assert isinstance(head, ResponseHead) and head.body is None and body == b"until close"
    assert closing.eof() == [END] and not closing.reusable


def test_response_parser_reports_truncation_and_garbage() -> None:
    parser = ResponseParser()
    parser.start()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    [error] = parser.eof()
    assert isinstance(error, ParseError) and error.status == 502
    garbage = ResponseParser()
    garbage.start()
    [error] = garbage.feed(b"NOT HTTP\r\n\r\n")
    assert isinstance(error, ParseError)


def test_wire_helpers() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    headers = [
        (b"Connection", b"close, X-Private"),
        (b"X-Private", b"1"),
        (b"Keep-Alive", b"5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Public", b"2"),
    ]
    assert end_to_end(headers) == [(b"X-Public", b"2")]
    assert error_response(404, "no route").startswith(b"HTTP/1.1 404 Not Found\r\n")


# --- properties --------------------------------------------------------------------------

VALID = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: b:80\r\nConnection: close\r\n\r\n",
]
INVALID_HINTS = [
    b"Host : a",
    b"X: a\r\n b",
    b"Content-Length: 1\r\nContent-Length: 2",
    b"Transfer-Encoding: chunked\r\nContent-Length: 3",
    b"X-A: a\x00b",
    b"Host: a b",
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
@example(b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n")
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    events = RequestParser().feed(data)
    for event in events:
        assert isinstance(event, RequestHead | bytes | ParseError | UpgradeData) or event is END
    errors = [e for e in events if isinstance(e, ParseError)]
    assert len(errors) <= 1 and (not errors or events[-1] is errors[0])
    for head in (e for e in events if isinstance(e, RequestHead)):
        assert head.authority is not None and (head.target.startswith("/") or head.target == "*")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=4), st.data())
def test_splitting_valid_input_anywhere_gives_the_same_events(
    requests: list[bytes], data: st.DataObject
) -> None:
    raw = b"".join(requests)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert summary(feed(*pieces)) == summary(feed(raw))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.sampled_from(INVALID_HINTS), st.data())
def test_invalid_requests_are_never_forwarded_whatever_the_split(
    valid: bytes, poison: bytes, data: st.DataObject
) -> None:
    head, _, rest = valid.partition(b"\r\n\r\n")
    raw = head + b"\r\n" + poison + b"\r\n\r\n" + rest
    whole = feed(raw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    split = feed(*pieces)
    assert summary(split) == summary(whole)
    assert isinstance(whole[-1], ParseError)
    assert not any(isinstance(e, RequestHead) for e in whole)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(1, 5))
def test_mutated_valid_requests_either_parse_cleanly_or_fail_once(noise: bytes, where: int) -> None:
    raw = VALID[1]
    at = len(raw) * where // 6
    mutated = raw[:at] + noise + raw[at:]
    events = feed(mutated)
    ends = sum(1 for e in events if e is END)
    heads = sum(1 for e in events if isinstance(e, RequestHead))
    assert ends <= heads  # a body never ends without its head
    if any(isinstance(e, ParseError) for e in events):
        assert isinstance(events[-1], ParseError)
