"""The tracer's lean intake (agent.tracing.intake) stores and counts what the per-record
path did: for the same records, the same flows in the same order, the same metrics."""

from __future__ import annotations

import ctypes
import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.flows.enrich import EndpointIndex
from agent.flows.flow import Flow
from agent.flows.ingest import FlowIngest
from agent.flows.store import FlowRing
from agent.metrics import FlowMetrics
from agent.tracing.feed import attribute
from agent.tracing.intake import (
    KEY_FIELDS,
    VALUE_FIELDS,
    Columns,
    TraceFlows,
    TraceIntake,
    close_columns,
    column_struct,
    record_flow_of,
)
from agent.tracing.records import KIND_CLOSE, KIND_DROP, ROLE_CLIENT, KernelRecord, to_flow

from .golden import (
    CLIENT_CLOSE,
    CLOCK,
    DROP,
    FAILED_CONNECT,
    INDEX,
    LAYOUT,
    LOOPBACK_CLOSE,
    REASONS,
    SERVER_CLOSE,
    T,
    raw,
    symbols,
)

GOLDEN = [CLIENT_CLOSE, SERVER_CLOSE, FAILED_CONNECT, LOOPBACK_CLOSE, DROP]


def per_record(records: list[KernelRecord], index: EndpointIndex,
               node: str) -> tuple[list[Any], list[Any]]:
    """The path before the intake: one flow per record, stored and observed one by one."""
    ring, metrics = FlowRing(1024), FlowMetrics()
    ingest = FlowIngest(ring, (metrics,))
    for rec in records:
        flow = to_flow(rec, CLOCK, REASONS, symbols)
        if flow is not None:
            ingest.put(attribute(flow, rec, index, node))
    return _contents(ring, metrics)


def intake(batches: list[list[KernelRecord]], index: EndpointIndex,
           node: str) -> tuple[list[Any], list[Any]]:
    ring, metrics = FlowRing(1024), FlowMetrics()
    ingest = FlowIngest(ring, (metrics,))
    record_flow = record_flow_of(LAYOUT, CLOCK, REASONS, symbols, node, attribute)
    reader = TraceIntake(LAYOUT, ingest, record_flow, CLOCK)
    for batch in batches:
        reader.drain([raw(r) for r in batch], index)
    return _contents(ring, metrics)


def _contents(ring: FlowRing, metrics: FlowMetrics) -> tuple[list[Any], list[Any]]:
    records, _ = ring.snapshot()
    samples = sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                     for family in metrics.collect() for s in family.samples)
    return list(records), samples


def test_raw_records_read_back_as_the_records() -> None:
    for rec in GOLDEN:
        assert KernelRecord.of(LAYOUT.from_buffer_copy(raw(rec))) == rec


def test_columns_are_read_at_the_layouts_offsets() -> None:
    cols = column_struct(LAYOUT, ("start_ns", "srtt_samples", "kind", "role"))
    assert cols.size == ctypes.sizeof(LAYOUT)
    assert cols.unpack(raw(CLIENT_CLOSE)) == (T - 2_000_000, 10, KIND_CLOSE, 1)


def test_golden_records_give_the_same_flows_and_metrics() -> None:
    want = per_record(GOLDEN * 3, INDEX, "node1")
    got = intake([GOLDEN, GOLDEN * 2], INDEX, "node1")
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert any(name.startswith("tulle_tcp_connect_duration") for name, *_ in got[1])


def test_a_drop_not_reported_is_not_stored() -> None:
    purge = dataclasses.replace(DROP, drop_reason=105)  # QUEUE_PURGE of no data
    flows, _ = intake([[purge, CLIENT_CLOSE]], INDEX, "node1")
    assert [f.tulle.tcp is not None for f in flows if isinstance(f, Flow)] == [True]


def test_a_new_index_names_the_same_pair_afresh() -> None:
    ring, metrics = FlowRing(16), FlowMetrics()
    record_flow = record_flow_of(LAYOUT, CLOCK, REASONS, symbols, "node1", attribute)
    reader = TraceIntake(LAYOUT, FlowIngest(ring, (metrics,)), record_flow, CLOCK)
    reader.drain([raw(CLIENT_CLOSE)], EndpointIndex())
    reader.drain([raw(CLIENT_CLOSE)], INDEX)
    first, second = list(ring.snapshot()[0])
    assert first.source.pod_name == "" and second.source.pod_name == "cli-1"


IPS = ["10.244.1.2", "10.244.2.2", "10.244.1.9", "127.0.0.1", "192.0.2.7"]
u32 = st.integers(0, 2**32 - 1)


@st.composite
def records(draw: st.DrawFn) -> KernelRecord:
    start = draw(st.integers(0, 2**40))
    established = draw(st.sampled_from([0, start + draw(st.integers(0, 10**9))]))
    samples = draw(st.integers(0, 50))
    return KernelRecord(
        kind=draw(st.sampled_from([KIND_CLOSE, KIND_CLOSE, KIND_CLOSE, KIND_DROP, 0])),
        time_ns=start + draw(st.integers(0, 10**10)),
        saddr=draw(st.sampled_from(IPS)), daddr=draw(st.sampled_from(IPS)),
        sport=draw(st.integers(0, 65535)), dport=draw(st.sampled_from([80, 8080, 9])),
        pod_ip=draw(st.sampled_from(IPS[:3])), protocol=draw(st.sampled_from([6, 17])),
        role=draw(st.sampled_from([0, 1, 2])), conn_id=draw(u32), start_ns=start,
        established_ns=established, srtt_sum_us=draw(st.integers(0, 10**7)) if samples else 0,
        srtt_min_us=draw(u32), srtt_max_us=draw(u32), srtt_last_us=draw(u32),
        srtt_first_us=draw(u32), srtt_samples=samples, retransmits=draw(st.integers(0, 5)),
        retrans_segments=draw(u32), netns=draw(u32), last_state=draw(st.integers(0, 12)),
        drop_reason=draw(st.sampled_from(list(REASONS) + [9])),
        location=draw(st.sampled_from([0, 0xFFFF0010])), payload_len=draw(st.integers(0, 3)),
        tcp_flags=draw(st.integers(0, 255)),
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(records(), max_size=12), max_size=4), st.sampled_from(["node1", "node2"]))
def test_any_records_give_the_same_flows_and_metrics(
        batches: list[list[KernelRecord]], node: str) -> None:
    flat = [r for batch in batches for r in batch]
    assert intake(batches, INDEX, node) == per_record(flat, INDEX, node)


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), min_size=1, max_size=10))
def test_a_batch_of_one_groups_closes_gives_the_same_flows_and_metrics(
        batch: list[KernelRecord]) -> None:
    """The common batch (one pod's closes to one peer) takes the intake's short way."""
    first = batch[0]
    same = [dataclasses.replace(r, kind=KIND_CLOSE, role=first.role, saddr=first.saddr,
                                daddr=first.daddr, pod_ip=first.pod_ip) for r in batch]
    assert intake([same], INDEX, "node1") == per_record(same, INDEX, "node1")


def test_a_record_of_another_size_is_ignored() -> None:
    flows, _ = intake([[CLIENT_CLOSE]], INDEX, "node1")
    ring = FlowRing(16)
    record_flow = record_flow_of(LAYOUT, CLOCK, REASONS, symbols, "node1", attribute)
    reader = TraceIntake(LAYOUT, FlowIngest(ring), record_flow, CLOCK)
    assert reader.drain([raw(CLIENT_CLOSE) + b"\0", raw(CLIENT_CLOSE)], INDEX) == 1
    assert list(ring.snapshot()[0]) == flows


def test_an_unbuilt_close_has_its_flows_time() -> None:
    """The store filters unbuilt slots by `Materializer.time` (since/until)."""
    record_flow = record_flow_of(LAYOUT, CLOCK, REASONS, symbols, "node1", attribute)
    reader = TraceIntake(LAYOUT, FlowIngest(FlowRing(4)), record_flow, CLOCK)
    how = TraceFlows(record_flow, INDEX, reader.time_of)
    for rec in (CLIENT_CLOSE, dataclasses.replace(SERVER_CLOSE, time_ns=T + 12_345)):
        assert how.time(raw(rec)) == how.flow(raw(rec)).time == CLOCK.wall(rec.time_ns)


@settings(max_examples=100, deadline=None)
@given(st.lists(records(), min_size=1, max_size=8))
def test_columns_are_each_fields_values_in_record_order(batch: list[KernelRecord]) -> None:
    """`Columns` (strided views) reads what `column_struct` (struct) reads, for every field
    the intake uses, and calls a batch uniform exactly when every record agrees."""
    names = ("kind", "role", "saddr", "daddr", "pod_ip") + VALUE_FIELDS + ("sport", "netns")
    joined = b"".join(raw(r) for r in batch)
    got = Columns(LAYOUT, names).read(joined)
    for name, column in zip(names, got, strict=True):
        want = [v for (v,) in column_struct(LAYOUT, (name,)).iter_unpack(joined)]
        assert column == want, name
    keys = Columns(LAYOUT, KEY_FIELDS)
    rows = set(zip(*keys.read(joined), strict=True))
    assert keys.uniform(joined, len(batch)) == (rows.pop() if len(rows) == 1 else None)


def _close_rows(role: int, rows: list[tuple[int, ...]]) -> tuple[list[int], list[int], int]:
    """The row-by-row measurements `close_columns` replaced (session 19's, verbatim)."""
    connect = []
    if role == ROLE_CLIENT:
        connect = [est - start for start, est, _s, _n, _r in rows if est > start]
    rtt = [round(total / n) * 1000 for _st, _e, total, n, _r in rows if n]
    return connect, rtt, sum(r[4] for r in rows)


u64 = st.integers(0, 2**64 - 1)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 2]),
       st.lists(st.tuples(u64, st.one_of(st.just(0), u64), u64,
                          st.one_of(st.just(0), st.integers(1, 2**32 - 1)), u32), max_size=20))
def test_close_columns_measure_what_the_rows_did(role: int, rows: list[tuple[int, ...]]) -> None:
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in VALUE_FIELDS]
    got = close_columns(None, None, role, columns)
    assert (got.connect_ns, got.rtt_ns, got.retransmits) == _close_rows(role, rows)


def test_a_mixed_batch_counts_each_group_by_its_own_columns() -> None:
    """Two pods' closes interleaved with a drop: each group's histogram gets its own
    records' latencies (the mixed path cuts the columns out by position)."""
    slow = dataclasses.replace(CLIENT_CLOSE, established_ns=CLIENT_CLOSE.start_ns + 7_000_000)
    batch = [CLIENT_CLOSE, SERVER_CLOSE, DROP, slow, SERVER_CLOSE, CLIENT_CLOSE]
    assert intake([batch], INDEX, "node1") == per_record(batch, INDEX, "node1")
