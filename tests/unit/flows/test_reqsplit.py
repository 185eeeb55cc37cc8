"""The split arithmetic (agent.flows.reqsplit): worked examples, the parts always adding up
to the total for marks in the order the waypoint takes them, and the JSON form."""

from __future__ import annotations

import copy
import json
import pickle
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.flows.codec import flow_to_json
from agent.flows.flow import Flow, RequestSplit, TulleInfo
from agent.flows.fromjson import flow_from_json
from agent.flows.reqsplit import (
    COMPACT,
    EXTRA,
    FIELDS,
    LEAN,
    PARTS,
    PARTS_WIDTH,
    RAW,
    check_marks,
    from_json,
    raw_of,
    relative,
    split,
    split_compact,
    split_lean,
    to_json,
)

MS = 1_000_000


def test_a_forwarded_request_on_a_new_connection() -> None:
    # head read at 0; connect 2 ms; request written at 3 ms; response head at 13 ms
    # (upstream RTT 1 ms: so 9 ms backend); head out at 14 ms; last byte at 20 ms (6 ms
    # of body: backend); handed to the client at 21 ms; client RTT 0.5 ms.
    r = split(21 * MS, (500, 3 * MS, 2 * MS, 0, 13 * MS, 14 * MS, 20 * MS, 1000))
    assert r == RequestSplit(total_ns=21_500_000, client_network_ns=500_000,
                             proxy_ns=3 * MS, upstream_connect_ns=2 * MS,
                             upstream_network_ns=1 * MS, backend_ns=15 * MS)


def test_a_response_whose_last_byte_came_with_its_head_has_no_body_time() -> None:
    r = split(10 * MS, (0, 1 * MS, 0, 0, 8 * MS, 9 * MS, 8 * MS, 2000))
    assert (r.upstream_network_ns, r.backend_ns, r.proxy_ns) == (2 * MS, 5 * MS, 3 * MS)


def test_a_retry_on_a_new_connection_is_connect_time_inside_the_window() -> None:
    # first try written at 1 ms; its connection failed, a new one took 4 ms (late)
    r = split(30 * MS, (0, 1 * MS, 4 * MS, 4 * MS, 25 * MS, 25 * MS, 29 * MS, 0))
    assert r.upstream_connect_ns == 4 * MS
    assert r.backend_ns == (25 - 1 - 4 + 4) * MS
    assert r.proxy_ns == 2 * MS


def test_an_rtt_longer_than_the_window_is_cut_to_it() -> None:
    r = split(5 * MS, (0, 1 * MS, 0, 0, 2 * MS, 2 * MS, 2 * MS, 9000))
    assert r.upstream_network_ns == 1 * MS and r.backend_ns == 0


def test_no_upstream_request_is_all_proxy_and_connect() -> None:
    assert split(7 * MS, (100, 0, 5 * MS, 0, 0, 0, 0, 0)) == RequestSplit(
        7_100_000, 100_000, 2 * MS, 5 * MS, 0, 0)


def test_no_response_head_leaves_the_rest_of_the_span_upstream() -> None:
    r = split(10 * MS, (0, 2 * MS, 0, 0, 0, 0, 0, 500))
    assert (r.proxy_ns, r.upstream_network_ns, r.backend_ns) == (2 * MS, 500_000, 7_500_000)


def test_a_late_request_body_is_client_time_not_backend_time() -> None:
    # written upstream at 1 ms without its body; the body's last byte came from the client
    # at 201 ms; the response head at 203 ms (upstream RTT 1 ms: 1 ms backend)
    r = split(205 * MS, (500, 1 * MS, 0, 0, 203 * MS, 203 * MS, 203 * MS, 1000, 201 * MS))
    assert r.client_network_ns == 500_000 + 200 * MS
    assert (r.upstream_network_ns, r.backend_ns, r.proxy_ns) == (1 * MS, 1 * MS, 3 * MS)
    # a body that ended before the request went upstream took nothing from the backend
    assert split(10 * MS, (0, 2 * MS, 0, 0, 8 * MS, 8 * MS, 8 * MS, 0, 1 * MS)).backend_ns == 6 * MS


def test_a_response_the_client_would_not_take_is_client_time_not_backend_time() -> None:
    # head out at 4 ms; the last byte at 604 ms, 500 ms of which the client's connection
    # would not take more (the backend was paused meanwhile)
    r = split(605 * MS, (0, 1 * MS, 0, 0, 3 * MS, 4 * MS, 604 * MS, 0, 0, 500 * MS))
    assert r.client_network_ns == 500 * MS
    assert r.backend_ns == 2 * MS + 100 * MS
    # a stall longer than the body (it went on after the last byte) is cut to the body
    r = split(20 * MS, (0, 1 * MS, 0, 0, 3 * MS, 3 * MS, 13 * MS, 0, 0, 50 * MS))
    assert (r.client_network_ns, r.backend_ns) == (10 * MS, 2 * MS)


@st.composite
def ordered_marks(draw: st.DrawFn) -> tuple[int, tuple[int, ...]]:
    """Marks as the waypoint takes them: early connects before the write, the response
    head after it, head out and last byte (in either order) after the head."""
    span = draw(st.integers(0, 10**11))
    client = draw(st.integers(0, 10**7))
    up_rtt = draw(st.integers(0, 10**7))
    if draw(st.booleans()):
        return span, (client, 0, draw(st.integers(0, span)), 0, 0, 0, 0, up_rtt)
    sent = draw(st.integers(1, max(1, span)))
    early = draw(st.integers(0, sent))
    first = draw(st.one_of(st.just(0), st.integers(sent, max(sent, span))))
    late = draw(st.integers(0, (first or span) - sent if (first or span) >= sent else 0))
    head_out = draw(st.integers(first, max(first, span))) if first else 0
    last = draw(st.integers(first, max(first, span))) if first else 0
    marks = (client, sent, early + late, late, first, head_out, last, up_rtt)
    extra = draw(st.integers(0, 2))  # a late request body, a stalled client
    body_end = draw(st.integers(0, span))
    stalled = draw(st.integers(0, span))
    return span, (*marks, body_end, stalled)[: 8 + extra]


@given(ordered_marks())
def test_the_parts_add_up_to_the_total(case: tuple[int, tuple[int, ...]]) -> None:
    span, marks = case
    r = split(span, marks)
    assert all(getattr(r, p) >= 0 for p in PARTS)
    assert sum(getattr(r, p) for p in PARTS) == r.total_ns == marks[0] * 1000 + span


@given(st.integers(-10**9, 10**12), st.lists(st.integers(-10**12, 10**12), min_size=8,
                                               max_size=10))
def test_any_marks_give_parts_that_are_never_negative(span: int, marks: list[int]) -> None:
    r = split(span, marks)
    assert all(getattr(r, p) >= 0 for p in FIELDS)


@given(ordered_marks())
def test_the_compact_form_splits_as_the_full_one(case: tuple[int, tuple[int, ...]]) -> None:
    """The waypoint's 5-integer form of the common request (no connect, the end read with
    the head, no client wait) means the 8 marks with connect 0 and last = first."""
    span, marks = case
    client, sent, _, _, first, head_out, _, up_rtt = marks[:8]
    full = (client, sent, 0, 0, first, head_out, first, up_rtt)
    compact = check_marks([client, sent, first, head_out, up_rtt])
    assert compact is not None and len(compact) == COMPACT
    assert split(span, compact) == split(span, full)


def _compact_is_full(span: int, marks: tuple[int, ...]) -> bool:
    client, sent, first, head_out, up_rtt = marks
    full = (client, sent, 0, 0, first, head_out, first, up_rtt)
    return split_compact(span, *marks) == split(span, full) == split(span, marks)


def test_the_compact_fast_path_is_the_full_arithmetic_in_every_ordering() -> None:
    """``split_compact`` (the agent's path for nearly every waypoint flow) is ``split`` of
    the 8-mark form with connect 0 and last = first: every ordering of span, sent, first
    and head_out (ties, 0 and below it included), RTTs under, at and over the window."""
    ns = (-1, 0, 1, 999, 1000, 1001, 2001)
    rtts = (-1, 0, 1, 2)  # µs: 1 fits some windows (1000 ns or more), 2 fits one
    bad = [(span, (c, s, f, h, u)) for span, s, f, h in product(ns, repeat=4)
           for c, u in product(rtts, repeat=2) if not _compact_is_full(span, (c, s, f, h, u))]
    assert bad == []


@given(st.integers(-10**12, 10**12), st.tuples(*[st.integers(-10**12, 10**12)] * 5))
def test_the_compact_fast_path_is_the_full_arithmetic_for_any_integers(
        span: int, marks: tuple[int, ...]) -> None:
    assert _compact_is_full(span, marks)


@given(st.integers(-10**9, 10**12), st.lists(st.integers(-10**12, 10**12), min_size=5,
                                               max_size=5))
def test_any_compact_marks_give_parts_that_are_never_negative(span: int,
                                                              marks: list[int]) -> None:
    r = split(span, marks)
    assert all(getattr(r, p) >= 0 for p in FIELDS)


def test_json_field_names_are_the_contract() -> None:
    r = RequestSplit(1, 2, 3, 4, 5, 6)
    assert list(to_json(r)) == ["total_ns", "client_network_ns", "proxy_ns",
                                "upstream_connect_ns", "upstream_network_ns", "backend_ns"]
    flow = Flow(time=1, tulle=TulleInfo(route="a/b", request_parts=r))
    out = json.loads(json.dumps(flow_to_json(flow)))
    assert out["tulle"]["request"] == to_json(r)
    assert flow_from_json(out).tulle == flow.tulle


def test_json_zeros_are_kept_and_bad_values_read_as_zero() -> None:
    assert to_json(RequestSplit())["upstream_connect_ns"] == 0
    assert from_json({"total_ns": "12", "proxy_ns": "x"}) == RequestSplit(total_ns=12)
    assert from_json("nope") is None


def _old_waypoint_marks(client: int, start: int, sent: int, connect: int, late: int,
                        first: int, head_out: int, last: int, up_rtt: int, body_end: int,
                        stalled: int) -> tuple[int, ...]:
    """What the waypoint sent before its marks moved to a binary column (the old
    ``Exchange.marks``): relative to the start, compact when the common case held."""
    sent = sent - start if sent else 0
    head_out = head_out - start if head_out else 0
    if last == first and not (connect or body_end or stalled):
        return (client, sent, first - start if first else 0, head_out, up_rtt)
    marks = (client, sent, connect, late, first - start if first else 0, head_out,
             last - start if last else 0, up_rtt)
    if stalled:
        return (*marks, body_end - start if body_end else 0, stalled)
    if body_end:
        return (*marks, body_end - start)
    return marks


@given(ordered_marks(), st.integers(1, 10**15))
def test_raw_clock_readings_give_the_split_the_relative_marks_gave(
        case: tuple[int, tuple[int, ...]], start: int) -> None:
    """The waypoint now sends its clock readings as taken (``RAW``); made relative by the
    agent they split exactly as the waypoint's own relative marks did."""
    span, marks = case
    client, sent, connect, late, first, head_out, last, up_rtt, body_end, stalled = (
        *marks, 0, 0)[:10]
    raw = (client, start, sent and start + sent, connect, late, first and start + first,
           head_out and start + head_out, last and start + last, up_rtt,
           body_end and start + body_end, stalled)
    assert len(raw) == RAW
    assert split(span, relative(raw)) == split(span, _old_waypoint_marks(*raw))


@given(ordered_marks(), st.integers(1, 10**15))
def test_lean_marks_with_or_without_the_extra_ones_split_as_the_raw_ones(
        case: tuple[int, tuple[int, ...]], start: int) -> None:
    """The waypoint's LEAN column plus a record's EXTRA marks are its RAW readings; a
    request without EXTRA marks (its end read with its head) splits the same whenever its
    head went out: the waypoint takes no clock reading for it then."""
    span, marks = case
    client, sent, connect, late, first, head_out, last, up_rtt, body_end, stalled = (
        *marks, 0, 0)[:10]
    at = lambda t: t and start + t  # noqa: E731  (a clock reading; 0: did not happen)
    raw = (client, start, at(sent), connect, late, at(first), at(head_out), at(last), up_rtt,
           at(body_end), stalled)
    lean = (client, start, at(sent), at(first), up_rtt)
    assert len(lean) == LEAN
    extra = (connect, late, at(head_out), at(last), at(body_end), stalled)
    assert len(extra) == EXTRA and raw_of(lean, extra) == raw
    with_head = (client, start, at(sent), 0, 0, at(first), at(head_out), at(first), up_rtt,
                 0, 0)
    assert split(span, relative(raw_of(lean, None))) == split(span, relative(with_head))


def _lean_is_full(span: int, lean: tuple[int, ...]) -> bool:
    return split_lean(span, lean) == split(span, relative(raw_of(lean, None)))


def test_the_lean_fast_path_is_the_full_arithmetic_in_every_ordering() -> None:
    """``split_lean`` (the agent's path for nearly every waypoint flow: the common
    request's split straight from its column) is ``split`` of its RAW readings made
    relative: every ordering of span, start, sent and first (ties, 0 and below it)."""
    ns = (-1, 0, 1, 999, 1000, 1001, 2001)
    rtts = (-1, 0, 2)
    bad = [(span, lean) for span, start, sent, first in product(ns, repeat=4)
           for c, u in product(rtts, repeat=2)
           if not _lean_is_full(span, lean := (c, start, sent, first, u))]
    assert bad == []


@given(st.integers(-10**12, 10**12), st.tuples(*[st.integers(-10**19, 10**19)] * 5))
def test_the_lean_fast_path_is_the_full_arithmetic_for_any_integers(
        span: int, lean: tuple[int, ...]) -> None:
    assert _lean_is_full(span, lean)


@given(ordered_marks(), st.integers(1, 10**15))
def test_the_lean_fast_path_splits_clock_readings_as_the_waypoint_takes_them(
        case: tuple[int, tuple[int, ...]], start: int) -> None:
    span, marks = case
    client, sent, first, up_rtt = marks[0], marks[1], marks[4], marks[7]
    at = lambda t: t and start + t  # noqa: E731  (a clock reading; 0: did not happen)
    r = RequestSplit(*split_lean(span, (client, start, at(sent), at(first), up_rtt)))
    assert r == split(span, (client, sent, first, 0, up_rtt))
    assert sum(getattr(r, p) for p in PARTS) == r.total_ns == client * 1000 + span


@given(st.tuples(*[st.integers(-10**30, 10**30)] * 6))
def test_a_flows_plain_parts_read_by_name_are_the_split_its_constructor_builds(
        values: tuple[int, int, int, int, int, int]) -> None:
    """The agent keeps a flow's parts as a plain tuple (``request_parts``); ``request``
    names them: a reader must not be able to tell it from the split built by name
    (fields, equality, hash, repr, copies, frozen), and the JSON is the same."""
    info, named = TulleInfo(request_parts=values), RequestSplit(*values)
    view = info.request
    assert type(view) is RequestSplit and view == named and hash(view) == hash(named)
    assert repr(view) == repr(named) and view._asdict() == dict(zip(FIELDS, values, strict=True))
    assert pickle.loads(pickle.dumps(view)) == named and copy.copy(view) == named
    assert info == TulleInfo(request_parts=named) and info.request_parts == named
    assert TulleInfo(request_parts=named).request is named  # already a view: as it is
    flow = Flow(time=1, tulle=info)
    assert flow_to_json(flow)["tulle"]["request"] == to_json(named)
    with pytest.raises(AttributeError):
        view.proxy_ns = 1  # type: ignore[misc]


def test_the_json_keeps_request_where_the_field_was_and_reads_no_request_parts_key() -> None:
    """The parts are a field of their own name now: the JSON still names them "request",
    between the kernel's drop location and the peer's identity, and a "request_parts" key
    in input is not a way in."""
    info = TulleInfo(route="a/b", request_parts=(3, 1, 1, 0, 1, 0), peer_spiffe_id="p")
    out = flow_to_json(Flow(time=1, tulle=info))
    assert list(out["tulle"]) == ["route", "request", "peer_spiffe_id"]
    out["tulle"]["request_parts"] = [9, 9, 9, 9, 9, 9]
    assert flow_from_json(out).tulle == info


def test_no_flow_split_reads_as_none() -> None:
    assert TulleInfo().request is None and TulleInfo().request_parts is None
    assert "request" not in flow_to_json(Flow(time=1, tulle=TulleInfo(route="a/b")))["tulle"]


def test_the_lean_fast_path_gives_the_parts_in_the_splits_order() -> None:
    """``split_lean`` returns a plain tuple (cheaper to build than the named one): the
    values in RequestSplit's field order, and a tuple of a width no marks form has (the
    flow builder tells them apart by it)."""
    start = 1_700_000_000_000
    fast = split_lean(95_000, (60, start, start + 30_000, start + 70_000, 55))
    assert type(fast) is tuple and len(fast) == PARTS_WIDTH
    assert fast == RequestSplit(155_000, 60_000, 30_000 + 25_000, 0, 40_000, 0)
    assert TulleInfo(request_parts=fast).request == RequestSplit(*fast)
