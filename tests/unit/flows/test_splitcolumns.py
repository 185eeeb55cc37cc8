"""``split_columns``: many common requests split at once (the metrics' fold), column by
column, is ``split_lean`` of each, whatever the readings; and a flow that keeps its row of
readings (bytes, ``TulleInfo.request_parts``) reads as the split of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.flows.flow import Flow, RequestSplit, TulleInfo, flow_to_json
from agent.flows.reqsplit import LEAN, LEAN_ROW, split_lean, to_json
from agent.flows.splitcolumns import split_columns

START = 1_700_000_000_000


@st.composite
def usual(draw: st.DrawFn) -> tuple[int, tuple[int, ...]]:
    """A request ``split_lean``'s first branch takes: sent after the start, answered,
    both inside the span."""
    span = draw(st.integers(1, 10**10))
    start = draw(st.integers(1, 10**15))
    sent = start + draw(st.integers(1, span))
    first = draw(st.integers(sent, start + span))
    return span, (draw(st.integers(0, 10**6)), start, sent, first, draw(st.integers(0, 10**6)))


INT64 = st.one_of(st.integers(-(1 << 63), (1 << 63) - 1),
                  st.sampled_from((0, 1, -1, (1 << 62) - 1, 1 << 62, (1 << 52) - 1, 1 << 52,
                                   (1 << 63) - 1, -(1 << 63))))
ANY = st.tuples(st.one_of(st.integers(-10**12, 10**12), INT64), st.tuples(*[INT64] * LEAN))


def eager(requests: list[tuple[int, tuple[int, ...]]]) -> tuple[list[int], ...]:
    """Five columns in PARTS order, by ``split_lean`` one request at a time."""
    parts = [split_lean(span, lean) for span, lean in requests]
    return tuple([p[i] for p in parts] for i in range(1, 6))


def columns(requests: list[tuple[int, tuple[int, ...]]]) -> tuple[list[int], ...]:
    return split_columns([span for span, _ in requests],
                         b"".join(LEAN_ROW.pack(*lean) for _, lean in requests))


@given(st.lists(usual(), max_size=40))
def test_usual_requests_split_by_columns_as_one_by_one(
        requests: list[tuple[int, tuple[int, ...]]]) -> None:
    assert columns(requests) == eager(requests)


@given(st.lists(st.one_of(usual(), ANY), max_size=40))
def test_any_requests_split_by_columns_as_one_by_one(
        requests: list[tuple[int, tuple[int, ...]]]) -> None:
    """Unusual ones among them (not sent, no answer, negative RTTs, readings out of order):
    the same parts."""
    assert columns(requests) == eager(requests)


def test_each_condition_of_the_column_path_is_needed() -> None:
    """One request per way out of the usual branch, beside a usual one: each column is
    still what ``split_lean`` gives (the column path alone would be wrong for each)."""
    ok = (95_000, (60, START, START + 30_000, START + 70_000, 55))
    odd = [
        (95_000, (60, 0, START + 30_000, START + 70_000, 55)),  # no start
        (95_000, (60, START, START, START + 70_000, 55)),  # sent at the start
        (95_000, (60, START, START + 30_000, START + 20_000, 55)),  # first before sent
        (95_000, (60, START, START + 30_000, START + 99_000, 55)),  # first past the span
        (95_000, (-3, START, START + 30_000, START + 70_000, 55)),  # a negative RTT
        (95_000, (60, START, START + 30_000, START + 70_000, -5)),  # and upstream
        (-1, (60, START, START + 30_000, START + 70_000, 55)),  # a negative span
        (95_000, (1 << 52, START, START + 30_000, START + 70_000, 55)),  # RTT * 1000 > 2^62
        (95_000, (60, START, START + 30_000, START + 70_000, 1 << 52)),  # and upstream
        (1 << 62, (60, START, START + 30_000, START + 70_000, 55)),  # a span too long
    ]
    for request in odd:
        assert columns([ok, request]) == eager([ok, request])


def test_windows_on_both_sides_of_the_upstream_rtt() -> None:
    """The upstream RTT inside every window, in none, and in some: network is the RTT, the
    window, or each request's smaller of the two."""
    inside = (95_000, (60, START, START + 30_000, START + 70_000, 20))  # 20 µs < 40 µs
    outside = (95_000, (60, START, START + 30_000, START + 70_000, 55))  # 55 µs > 40 µs
    for batch in ([inside] * 3, [outside] * 3, [inside, outside, inside]):
        assert columns(batch) == eager(batch)
    assert columns([inside])[3] == [20_000] and columns([outside])[3] == [40_000]


def test_readings_out_of_step_with_the_spans_are_refused() -> None:
    with pytest.raises(ValueError, match="not 40 each"):
        split_columns([1, 2], bytes(72))
    assert split_columns([], b"") == ([], [], [], [], [])


@given(st.one_of(usual(), ANY))
def test_a_flow_keeping_its_readings_reads_as_their_split(
        request: tuple[int, tuple[int, ...]]) -> None:
    """By name, as a tuple and in the JSON: what the flow would read had it been split
    when built."""
    span, lean = request
    lazy = TulleInfo(duration_ns=span, request_parts=LEAN_ROW.pack(*lean))
    split = TulleInfo(duration_ns=span, request_parts=split_lean(span, lean))
    assert lazy.parts == split.parts == split_lean(span, lean)
    assert lazy.request == split.request == RequestSplit(*split_lean(span, lean))
    assert (flow_to_json(Flow(time=1, tulle=lazy))["tulle"]
            == flow_to_json(Flow(time=1, tulle=split))["tulle"])
    assert flow_to_json(Flow(time=1, tulle=lazy))["tulle"]["request"] == to_json(
        RequestSplit(*split_lean(span, lean)))
