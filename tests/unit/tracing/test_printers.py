"""`tulle trace` output against golden records: lines, JSON objects, log2 histograms; and
the observe filters on the trace."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.cli.trace import VERB_FILTERS, narrow
from agent.flows.filters import FilterError, FlowFilter, compile_filters
from agent.flows.flagfilters import FilterBuilder
from agent.flows.flow import Flow, Service
from agent.flows.tracefilters import parse_duration_ns
from agent.observer.convert import FlowsQuery, filter_from_proto, filter_to_proto
from agent.tracing import tracefmt
from agent.tracing.feed import attribute
from agent.tracing.hist import Log2Histogram, bucket, bucket_range
from agent.tracing.records import close_flow, drop_flow

from .golden import (
    CLIENT_CLOSE,
    CLOCK,
    DROP,
    FAILED_CONNECT,
    INDEX,
    REASONS,
    SERVER_CLOSE,
    symbols,
)


def flow_of(rec: object, node: str = "node1") -> Flow:
    if rec is DROP:
        f = drop_flow(DROP, CLOCK, REASONS, symbols)
        assert f is not None
    else:
        f = close_flow(rec, CLOCK)  # type: ignore[arg-type]
    return attribute(f, rec, INDEX, node)  # type: ignore[arg-type]


CLIENT, SERVER, FAILED, DROPPED = (flow_of(CLIENT_CLOSE), flow_of(SERVER_CLOSE, "node2"),
                                   flow_of(FAILED_CONNECT), flow_of(DROP, "node2"))
STAMP = "Dec  5 07:00:05.000"


@pytest.mark.parametrize(("verb", "flow", "line"), [
    ("connect", CLIENT,
     f"{STAMP} node1 trc/cli-1:43512 -> trc/srv-1:8080 client connect 63µs"),
    ("connect", SERVER,
     f"{STAMP} node2 trc/cli-1:43512 -> trc/srv-1:8080 server handshake rtt 40µs"),
    ("connect", FAILED,
     f"{STAMP} node1 trc/cli-1:40000 -> trc/srv-1:9 client connect failed (SYN_SENT)"),
    ("rtt", CLIENT, f"{STAMP} node1 trc/cli-1:43512 -> trc/srv-1:8080 client srtt "
                    "min/mean/max 80µs/100µs/150µs last 90µs (10 samples)"),
    ("retrans", CLIENT,
     f"{STAMP} node1 trc/cli-1:43512 -> trc/srv-1:8080 client retransmits 3 in 2ms"),
    ("drops", DROPPED,
     f"{STAMP} node2 trc/cli-1:40000 -> trc/srv-1:9 NO_SOCKET at tcp_v4_rcv+0x10"),
])
def test_lines_golden(verb: str, flow: Flow, line: str) -> None:
    assert tracefmt.wanted(verb, flow)
    assert tracefmt.format_line(verb, flow) == line


def test_which_flows_each_verb_takes() -> None:
    assert not tracefmt.wanted("rtt", FAILED)  # no segment: no RTT
    assert not tracefmt.wanted("retrans", SERVER)
    assert not tracefmt.wanted("connect", DROPPED) and not tracefmt.wanted("drops", CLIENT)
    assert not tracefmt.wanted("request", CLIENT)  # no request split on a close record
    with pytest.raises(ValueError, match="unknown trace verb"):
        tracefmt.wanted("bogus", CLIENT)


def test_json_golden() -> None:
    assert tracefmt.event_json("connect", CLIENT) == {
        "time": "2025-12-05T07:00:05Z", "node_name": "node1", "event": "connect",
        "source": {"namespace": "trc", "pod_name": "cli-1",
                   "workload": {"kind": "Deployment", "name": "cli"}},
        "destination": {"namespace": "trc", "pod_name": "srv-1",
                        "workload": {"kind": "Deployment", "name": "srv"}},
        "source_ip": "10.244.1.2", "destination_ip": "10.244.2.2",
        "source_port": 43512, "destination_port": 8080, "protocol": "TCP",
        "role": "client", "established": True, "connect_latency_ns": 63000,
        "handshake_rtt_us": 120, "retransmits": 3, "lifetime_ns": 2_000_000,
        "srtt_us": {"min": 80, "mean": 100, "max": 150, "last": 90, "samples": 10},
        "last_state": "FIN_WAIT1",
    }
    drop = tracefmt.event_json("drops", DROPPED)
    assert (drop["reason"], drop["reason_code"], drop["location"]) == (
        "NO_SOCKET", 3, "tcp_v4_rcv+0x10")
    json.dumps(drop)  # plain JSON


@pytest.mark.parametrize(("value", "index"), [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (63, 5),
                                               (64, 6), (1023, 9), (1024, 10)])
def test_log2_buckets(value: int, index: int) -> None:
    assert bucket(value) == index
    lo, hi = bucket_range(index)
    assert lo <= value <= hi


def test_histogram_lines_golden() -> None:
    h = Log2Histogram()
    for v in (40, 63, 70, 70, 300):
        h.add(v)
    assert h.lines("connect µs") == [
        "          connect µs : count     distribution",
        "        32 -> 63        : 2         |****************************************|",
        "        64 -> 127       : 2         |****************************************|",
        "       128 -> 255       : 0         |                                        |",
        "       256 -> 511       : 1         |********************                    |",
    ]
    assert Log2Histogram().lines("x") == []


def test_histograms_per_workload_pair() -> None:
    other = dataclasses.replace(CLIENT_CLOSE, established_ns=CLIENT_CLOSE.start_ns + 700_000)
    lines = tracefmt.histograms("connect", [CLIENT, flow_of(other), SERVER])
    assert lines[0] == "trc/cli -> trc/srv (2 connections)"  # the server side has no latency
    assert any(line.startswith("        32 -> 63        : 1") for line in lines)
    assert any(line.startswith("       512 -> 1023      : 1") for line in lines)
    via_service = dataclasses.replace(
        CLIENT, destination=None, destination_service=Service("catalog", "backend"))
    assert tracefmt.pair(via_service) == "trc/cli -> backend/catalog"
    assert tracefmt.histograms("drops", [DROPPED, DROPPED]) == [
        "       2  trc/cli -> trc/srv  NO_SOCKET"]


# -- filters -----------------------------------------------------------------------------------

def select(flags: list[tuple[str, str | None]], flows: list[Flow]) -> list[Flow]:
    b = FilterBuilder()
    for flag, value in flags:
        b.add(flag, value)
    keep = compile_filters(*b.build())
    return [f for f in flows if keep(f)]


ALL = [CLIENT, SERVER, FAILED, DROPPED]


def test_retransmits_filter() -> None:
    assert select([("retransmits", "1")], ALL) == [CLIENT]
    assert select([("not", None), ("retransmits", "1")], ALL) == [SERVER, FAILED, DROPPED]


def test_rtt_over_filter_uses_the_mean() -> None:
    assert select([("rtt-over", "99us")], ALL) == [CLIENT]
    assert select([("rtt-over", "100us")], ALL) == []
    assert select([("rtt-over", "0.03ms")], ALL) == [CLIENT, SERVER]


def test_connect_over_filter() -> None:
    assert select([("connect-over", "50us")], ALL) == [CLIENT]
    assert select([("connect-over", "1")], ALL) == []  # a bare number is milliseconds


def test_trace_filters_and_with_each_other() -> None:
    assert select([("retransmits", "1"), ("rtt-over", "1ms")], ALL) == []


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("rtt-over", "fast", "rtt-over: 'fast' is not a duration"),
    ("connect-over", "5 parsecs", "connect-over"),
    ("retransmits", "many", "retransmits"),
])
def test_bad_trace_filter_values_are_named(flag: str, value: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        select([(flag, value)], ALL)


def test_trace_filters_survive_the_wire() -> None:
    ff = FlowFilter(tcp_retransmits=("1",), tcp_rtt_over=("5ms",), tcp_connect_over=("1ms",))
    assert filter_from_proto(filter_to_proto(ff)) == ff


def test_verbs_narrow_every_allow_filter() -> None:
    q = FlowsQuery(whitelist=(FlowFilter(source_pod=("trc/",)), FlowFilter(verdict=("X",))))
    narrowed = narrow(q, "retrans")
    assert all(ff.tcp_retransmits == ("1",) for ff in narrowed.whitelist)
    assert narrowed.whitelist[0].source_pod == ("trc/",)
    assert narrow(FlowsQuery(), "drops").whitelist == (FlowFilter(**VERB_FILTERS["drops"]),)
    keep = compile_filters(narrow(FlowsQuery(), "drops").whitelist)
    assert [f for f in ALL if keep(f)] == [DROPPED]
    keep = compile_filters(narrow(FlowsQuery(), "rtt").whitelist)
    assert [f for f in ALL if keep(f)] == [CLIENT, SERVER]


# -- properties --------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**63))
def test_every_value_falls_in_its_buckets_range(v: int) -> None:
    lo, hi = bucket_range(bucket(v))
    assert lo <= v <= hi


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=50))
def test_histogram_counts_every_value_once(values: list[int]) -> None:
    h = Log2Histogram()
    for v in values:
        h.add(v)
    lines = h.lines("µs")
    assert h.total == len(values) == sum(int(line.split(":")[1].split()[0]) for line in lines[1:])


@given(st.integers(min_value=0, max_value=10**12),
       st.sampled_from([("ns", 1), ("us", 1_000), ("µs", 1_000), ("ms", 10**6), ("s", 10**9)]))
def test_durations_parse_in_every_unit(n: int, unit: tuple[str, int]) -> None:
    assert parse_duration_ns(f"{n}{unit[0]}", "x") == n * unit[1]
