"""Offline replay: reading saved lines, streaming selection, time arguments."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.flows.codec import envelope
from agent.flows.flow import Flow, LostEvent, LostEventSource, TCPFlags
from agent.flows.replay import parse_duration, parse_time_arg, read_events, select_stream
from agent.flows.store import Record, select_records
from tests.unit.flows.samples import T0, syn

records = st.lists(
    st.one_of(
        st.builds(lambda t, v: Flow(time=t, verdict=v), st.integers(0, 20),
                  st.sampled_from(["FORWARDED", "DROPPED"])),
        st.builds(lambda t: LostEvent(LostEventSource.PERF_EVENT_RING_BUFFER, 1, time=t),
                  st.integers(0, 20)),
    ),
    max_size=15,
)


@settings(max_examples=300, deadline=None)
@given(records, st.integers(0, 6), st.booleans(), st.sampled_from([None, 5]),
       st.sampled_from([None, 15]), st.booleans())
def test_streaming_selection_equals_store_selection(
    recs: list[Record], number: int, first: bool, since: int | None, until: int | None,
    dropped_only: bool,
) -> None:
    pred = (lambda f: f.verdict == "DROPPED") if dropped_only else None
    want = select_records(recs, number, first=first, since=since, until=until, predicate=pred)
    got = list(select_stream(recs, number, first=first, since=since, until=until,
                             predicate=pred))
    assert got == want


def test_read_events_skips_and_reports_bad_lines() -> None:
    errors: list[tuple[int, str]] = []
    lines = [
        json.dumps(envelope(syn())),
        "",
        "[1, 2]",
        '{"node_status": {"state_change": "NODE_CONNECTED"}}',
        '{"lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": "4"}}',
        '{"flow": {"time": "not a time"}}',
        json.dumps(envelope(syn(uuid="second"))),
    ]
    got = list(read_events(lines, lambda n, m: errors.append((n, m))))
    assert [type(r).__name__ for r in got] == ["Flow", "LostEvent", "Flow"]
    assert [n for n, _ in errors] == [3, 6]
    assert "RFC 3339" in errors[1][1]


def test_durations_and_time_arguments() -> None:
    assert parse_duration("5m") == 300 * 10**9
    assert parse_duration("1h30m") == 5400 * 10**9
    assert parse_duration("1.5s") == 1_500_000_000
    assert parse_duration("250ms") == 250_000_000
    assert parse_duration("2d") == 172_800 * 10**9
    for bad in ("", "5", "m5", "5m x", "5 m"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    now = T0 + 10**12
    assert parse_time_arg("10m", now) == now - 600 * 10**9
    assert parse_time_arg("2023-11-22T10:00:00.123Z", now) == T0
    with pytest.raises(ValueError, match="relative time"):
        parse_time_arg("yesterday", now)


def test_tcp_flags_from_header_bits() -> None:
    assert TCPFlags.from_bits(0x02) == TCPFlags(SYN=True)
    assert TCPFlags.from_bits(0x12) == TCPFlags(SYN=True, ACK=True)
    assert TCPFlags.from_bits(0x11).names() == ["ACK", "FIN"]
    assert TCPFlags.from_bits(0x1FF).names() == [
        "SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR", "NS"
    ]
    assert TCPFlags.from_bits(0x12) is TCPFlags.from_bits(0x12)
