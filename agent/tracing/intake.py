"""The tracer's raw records into the flow store at ring-buffer speed, as the datapath's are.

The L4 new-connection workload closes ~10,000 connections a second per node, two records
each (client and server), all of them through this path. Built one `Flow` at a time (decode,
`to_flow`, `attribute`, store, metrics) a record cost the agent ~20 µs: tracing took a
quarter of that workload's rate (bench/results/trace-2026-12-07-l4new.md). So, as
`agent.datapath.eventreader` does for the datapath's records:

- the store keeps each close record's bytes with what builds its flow (`TraceFlows`, which
  holds the `EndpointIndex` of that batch), and the flow is built only when a reader reads
  it: the same flow, later, and most are never read;
- the metrics read a few columns of the batch (`Columns`: one list of ints per field, cut
  out of the joined batch by a strided `memoryview`, no tuple per record), group the closes
  by who they are about (role, addresses, pod), name each group's endpoints once per index
  (from one flow built the old way) and count the group in one call (`TcpCloses`), its
  measurements computed by column with C iterators (`close_columns`);
- drops are rare and the kernel's reason decides whether they are reported at all: they are
  built at once, as before, and stored in their place in the batch.

``tests/unit/tracing/test_intake.py`` checks that the flows and metrics are the ones the
per-record path gave (`record_flow_of`: decode, `to_flow`, `feed.attribute`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import struct
from collections.abc import Callable
from itertools import compress, repeat
from operator import mul, sub, truediv
from typing import Literal

from agent.flows.enrich import EndpointIndex
from agent.flows.flow import Endpoint, Flow
from agent.flows.ingest import FlowIngest, TcpCloses
from agent.flows.store import Materializer
from agent.tracing.records import (
    KIND_CLOSE,
    KIND_DROP,
    ROLE_CLIENT,
    Clock,
    KernelRecord,
    Symbolizer,
    to_flow,
)

# What the metrics of a close depend on besides its measurements: the endpoints come from
# the addresses and the record's pod, the orientation from the role. Measurements in the
# layout's order (`column_struct` checks).
KEY_FIELDS = ("kind", "role", "saddr", "daddr", "pod_ip")
VALUE_FIELDS = ("start_ns", "established_ns", "srtt_sum_us", "srtt_samples", "retransmits")
Key = tuple[int, ...]  # a record's KEY_FIELDS
Column = list[int]  # one field of every record of a batch (or of a group), in order
PAIR_CACHE_LIMIT = 65_536  # groups kept named; past this (world traffic) start over
IntCode = Literal["B", "H", "I", "Q"]  # struct and memoryview codes of unsigned ints
_CODES: dict[int, IntCode] = {1: "B", 2: "H", 4: "I", 8: "Q"}


def column_struct(layout: type[ctypes.Structure], names: tuple[str, ...]) -> struct.Struct:
    """A `struct.Struct` reading `names` (in this order) out of one record of `layout` (BCC's
    ctypes view of ``struct trace_record``): the offsets come from the layout, never typed
    here. Fields in offset order, so the format is pad bytes and codes."""
    placed = sorted((getattr(layout, n).offset, getattr(layout, n).size, n) for n in names)
    if [n for _o, _s, n in placed] != list(names):
        raise ValueError(f"fields {names} are not in the layout's order")
    fmt, at = "=", 0
    for offset, size, _name in placed:
        fmt += "x" * (offset - at) + _CODES[size]
        at = offset + size
    return struct.Struct(fmt + "x" * (ctypes.sizeof(layout) - at))


class Columns:
    """Fields of a batch of records of `layout`, joined, as one list of ints per field.

    A field at an offset that is a multiple of its size (every field of ``struct
    trace_record``) is a strided `memoryview` of the batch, turned into ints in C: no tuple
    and no Python step per record (``struct.iter_unpack`` made one tuple per record, which
    also fed the young collections). Any other field is read with `column_struct`."""

    __slots__ = ("readers",)

    def __init__(self, layout: type[ctypes.Structure], names: tuple[str, ...]) -> None:
        size = ctypes.sizeof(layout)
        self.readers: list[tuple[IntCode, int, int] | struct.Struct] = []
        for name in names:
            field = getattr(layout, name)
            code = _CODES[field.size]
            if (field.offset % field.size or size % field.size
                    or struct.calcsize(code) != field.size):
                self.readers.append(column_struct(layout, (name,)))
            else:
                self.readers.append((code, field.offset // field.size, size // field.size))

    def read(self, joined: bytes) -> list[Column]:
        view = memoryview(joined)
        out: list[Column] = []
        for reader in self.readers:
            if isinstance(reader, struct.Struct):
                out.append([value for (value,) in reader.iter_unpack(joined)])
            else:
                code, start, step = reader
                out.append(view.cast(code)[start::step].tolist())
        return out

    def uniform(self, joined: bytes, count: int) -> tuple[int, ...] | None:
        """The fields' values when all `count` records of `joined` hold the same ones, else
        None. A column is compared with its first value repeated, view against view (in C,
        item by item): no int per record."""
        view = memoryview(joined)
        first: list[int] = []
        for reader in self.readers:
            if isinstance(reader, struct.Struct):
                column = [value for (value,) in reader.iter_unpack(joined)]
                if column.count(column[0]) != count:
                    return None
                first.append(column[0])
                continue
            code, start, step = reader
            strided = view.cast(code)[start::step]
            if strided != memoryview(strided[:1].tobytes() * count).cast(code):
                return None
            first.append(strided[0])
        return tuple(first)


def _layout_order(layout: type[ctypes.Structure], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda n: getattr(layout, n).offset))


class TraceFlows:
    """Builds a close record's flow from its bytes, with the index of the batch it came in
    (the `Materializer` of the store's deferred slots); `record_flow`'s flow exactly."""

    __slots__ = ("build", "index", "time_of")

    def __init__(self, build: Callable[[bytes, EndpointIndex], Flow | None],
                 index: EndpointIndex, time_of: Callable[[bytes], int]) -> None:
        self.build = build
        self.index = index
        self.time_of = time_of

    def flow(self, raw: bytes) -> Flow:
        flow = self.build(raw, self.index)
        assert flow is not None  # only close records are deferred, and every close is a flow
        return flow

    def time(self, raw: bytes) -> int:
        return self.time_of(raw)


class Built:
    """A flow built at ingestion (a drop), stored in its place among deferred records."""

    __slots__ = ("built",)

    def __init__(self, flow: Flow) -> None:
        self.built = flow

    def flow(self, raw: bytes) -> Flow:
        return self.built

    def time(self, raw: bytes) -> int:
        return self.built.time or 0


class TraceIntake:
    """One drain's raw records into `ingest`; `record_flow(raw, index)` is the one
    translation of a record (`agent.tracing.feed`), used for drops, for naming a group's
    endpoints, and by `TraceFlows` when a reader reads a close."""

    def __init__(self, layout: type[ctypes.Structure], ingest: FlowIngest,
                 record_flow: Callable[[bytes, EndpointIndex], Flow | None],
                 clock: Clock) -> None:
        self.layout = layout
        self.size = ctypes.sizeof(layout)
        self.ingest = ingest
        self.record_flow = record_flow
        self.clock = clock
        key_order = _layout_order(layout, KEY_FIELDS)
        self.keys = Columns(layout, key_order)  # a group's key, in the layout's order
        self.values = Columns(layout, VALUE_FIELDS)
        self._kind, self._role = key_order.index("kind"), key_order.index("role")
        self._time = column_struct(layout, ("time_ns",))
        self._pairs: dict[tuple[int, ...], tuple[Endpoint | None, Endpoint | None, Flow]] = {}
        self._pairs_for: EndpointIndex | None = None

    def time_of(self, raw: bytes) -> int:
        return self.clock.wall(self._time.unpack(raw)[0])

    def drain(self, batch: list[bytes], index: EndpointIndex) -> int:
        """Store and count one batch of raw records; the number of flows stored."""
        if set(map(len, batch)) != {self.size}:
            batch = [raw for raw in batch if len(raw) == self.size]
            if not batch:
                return 0
        if index is not self._pairs_for or len(self._pairs) > PAIR_CACHE_LIMIT:
            self._pairs, self._pairs_for = {}, index
        joined = b"".join(batch)
        rows = self.values.read(joined)
        n = len(batch)
        deferred = TraceFlows(self.record_flow, index, self.time_of)
        key = self.keys.uniform(joined, n)
        if key is not None and key[self._kind] == KIND_CLOSE:
            # The common batch: one pod's closes to one peer. No Python step per record.
            raws: list[bytes] = batch
            hows: list[Materializer] = [deferred] * n
            groups, firsts = {key: rows}, {key: batch[0]}
            drops: list[tuple[Flow, int]] = []
        else:
            keys = self.keys.read(joined)
            raws, hows, groups, firsts, drops = self._sort(batch, keys, rows, index, deferred)
        counts, closes = drops, []
        for key, values in groups.items():
            source, destination, sample = self._pair(key, firsts[key], index)
            counts.append((sample, len(values[0])))
            closes.append(close_columns(source, destination, key[self._role], values))
        self.ingest.put_deferred(raws, hows, counts, closes)
        return len(raws)

    def _sort(self, batch: list[bytes], keys: list[Column], rows: list[Column],
              index: EndpointIndex, deferred: TraceFlows,
              ) -> tuple[list[bytes], list[Materializer], dict[Key, list[Column]],
                         dict[Key, bytes], list[tuple[Flow, int]]]:
        """A mixed batch, record by record: closes grouped (by position, their columns cut
        out per group) and deferred, drops built (and left out when not reported), other
        kinds ignored; the store's order kept."""
        raws: list[bytes] = []
        hows: list[Materializer] = []
        members: dict[Key, list[int]] = {}
        firsts: dict[Key, bytes] = {}
        drops: list[tuple[Flow, int]] = []
        kind_at = self._kind
        for at, (raw, key) in enumerate(zip(batch, zip(*keys, strict=True), strict=True)):
            kind = key[kind_at]
            if kind == KIND_CLOSE:
                raws.append(raw)
                hows.append(deferred)
                group = members.get(key)
                if group is None:
                    group = members[key] = []
                    firsts[key] = raw
                group.append(at)
            elif kind == KIND_DROP:
                flow = self.record_flow(raw, index)
                if flow is not None:
                    raws.append(raw)
                    hows.append(Built(flow))
                    drops.append((flow, 1))
        groups = {key: [list(map(column.__getitem__, at)) for column in rows]
                  for key, at in members.items()}
        return raws, hows, groups, firsts, drops

    def _pair(self, key: tuple[int, ...], raw: bytes, index: EndpointIndex,
              ) -> tuple[Endpoint | None, Endpoint | None, Flow]:
        """The endpoints a group's flows name, and the flow the generic metrics count for
        each of them (its measurements taken off: those are counted by column), from the
        group's first record."""
        pair = self._pairs.get(key)
        if pair is None:
            flow = self.record_flow(raw, index)
            assert flow is not None  # a close
            pair = self._pairs[key] = (flow.source, flow.destination,
                                       dataclasses.replace(flow, tulle=None))
        return pair


def close_columns(source: Endpoint | None, destination: Endpoint | None, role: int,
                  values: list[Column]) -> TcpCloses:
    """A group's measurements as `KernelSeries` counts them, from its `VALUE_FIELDS`
    columns: connect latency of client records that established, the mean smoothed RTT of
    those with samples, retransmits. C iterators only, no Python step per record; the usual
    group (every client established, every connection sampled) skips the filters."""
    start, established, srtt_sum, samples, retransmits = values
    connect: list[int] = []
    if role == ROLE_CLIENT and start:
        # est - start > 0 (both unsigned, Python ints) is "established, latency above 0"
        connect = list(map(sub, established, start))
        if min(connect) <= 0:
            connect = [latency for latency in connect if latency > 0]
    if 0 in samples:
        srtt_sum, samples = list(compress(srtt_sum, samples)), list(filter(None, samples))
    # round(sum / n) * 1000: the mean in µs, rounded as `round` does, in ns
    means = map(float.__round__, map(truediv, srtt_sum, samples))
    rtt = list(map(mul, means, repeat(1000, len(samples))))
    return TcpCloses(source, destination, connect, rtt, sum(retransmits))


def record_flow_of(layout: type[ctypes.Structure], clock: Clock, reasons: dict[int, str],
                   symbols: Symbolizer, node: str,
                   attribute: Callable[[Flow, KernelRecord, EndpointIndex, str], Flow],
                   ) -> Callable[[bytes, EndpointIndex], Flow | None]:
    """The per-record translation, raw bytes to the attributed flow (None: not reported)."""

    def record_flow(raw: bytes, index: EndpointIndex) -> Flow | None:
        rec = KernelRecord.of(layout.from_buffer_copy(raw))
        flow = to_flow(rec, clock, reasons, symbols)
        return None if flow is None else attribute(flow, rec, index, node)

    return record_flow
