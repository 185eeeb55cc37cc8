"""The per-agent flow store: a bounded ring of flows and lost-event records.

Writers (the waypoint's L7 events, the conntrack collector) call `FlowRing.put` or
`put_many` with flows. The datapath's event reader, which must keep up with hundreds of
thousands of events a second, calls `put_deferred` instead: a slot then holds the raw record
(bytes) and a parallel slot what the reader resolved for it at ingestion (its `Materializer`),
and the `Flow` is built only when a reader reads that slot, once (it replaces the bytes).
Most flows are never read, so most are never built; and since bytes are not tracked by
Python's garbage collector, a ring of raw records costs the collector nothing.

When the ring is full the oldest record is overwritten and counted. Losses upstream of the
ring are reported with `record_lost(source, n)`: they are counted per source and stored as
`LostEvent` records that readers see in the stream, like Hubble's.

Readers take a consistent `snapshot()` (records plus the sequence number after them) and
then follow with a `Cursor`, which blocks on a condition variable (`wait`) or polls
(`poll`, for asyncio code); both see only built flows. A cursor that falls behind by more
than the capacity yields a ``HUBBLE_RING_BUFFER`` LostEvent for the records it missed.

`select_records` is the pure selection shared by the ring, the server and offline replay:
since/until, first/last N, and a filter predicate (lost events bypass the predicate).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

from agent.flows.flow import Flow, LostEvent
from agent.flows.names import LostEventSource

Record = Flow | LostEvent
DEFAULT_CAPACITY = 65_535


class Materializer(Protocol):
    """Builds the flow of a raw record; what a deferred slot needs to become a `Flow`."""

    def flow(self, raw: bytes) -> Flow: ...

    def time(self, raw: bytes) -> int: ...


_Slot = Record | bytes  # bytes: a raw record, its Materializer in the parallel slot


@dataclass(frozen=True)
class RingStats:
    num_flows: int  # records currently held (flows and lost-event records)
    max_flows: int  # capacity
    seen_flows: int  # flows ever put
    overwritten: int  # records overwritten because the ring was full
    lost: dict[str, int] = field(default_factory=dict)  # events lost upstream, by source
    uptime_ns: int = 0
    flows_rate: float = 0.0  # flows/s over the rate window


class FlowRing:
    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        rate_window_s: float = 10.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"flow ring capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.rate_window_s = rate_window_s
        self._clock_ns = clock_ns
        self._started_ns = clock_ns()
        self._buf: list[_Slot | None] = [None] * capacity
        self._how: list[Materializer | None] = [None] * capacity
        self._next = 0  # sequence number of the next record written
        self._seen = 0
        self._lost: dict[str, int] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._waiters = 0

    # -- writing -----------------------------------------------------------------------------

    def put(self, flow: Flow) -> None:
        self._store([flow], [None], flows=1)

    def put_many(self, flows: Iterable[Flow]) -> None:
        items: list[_Slot] = list(flows)
        self._store(items, [None] * len(items), flows=len(items))

    def put_deferred(self, raws: list[bytes], hows: list[Materializer]) -> None:
        """Store raw records whose flows are built when first read, `hows[i]` building
        `raws[i]` (see the module doc)."""
        if len(hows) != len(raws):
            raise ValueError(f"{len(raws)} raw records but {len(hows)} materializers")
        self._store(raws, hows, flows=len(raws))  # type: ignore[arg-type]

    def _store(self, items: list[_Slot], hows: list[Materializer | None], *, flows: int) -> None:
        """Append `items` and their materializers (None: nothing to build), overwriting the
        oldest; `flows` of them count as seen. Slice assignments: one C loop per batch."""
        n, cap = len(items), self.capacity
        if n > cap:
            items, hows = items[n - cap:], hows[n - cap:]
        kept = len(items)
        with self._lock:
            start = (self._next + n - kept) % cap  # the first slot written
            first = min(kept, cap - start)
            for buf, part in ((self._buf, items), (self._how, hows)):
                buf[start:start + first] = part[:first]  # type: ignore[assignment]
                buf[:kept - first] = part[first:]  # type: ignore[assignment]
            self._seen += flows
            self._next += n
            if self._waiters:
                self._cond.notify_all()

    def _materialize(self, seq: int, slot: _Slot, how: Materializer | None) -> Record:
        """The record at `seq`, building (and keeping) the flow of a deferred slot."""
        if type(slot) is not bytes:
            return slot  # type: ignore[return-value]
        assert how is not None
        flow = how.flow(slot)
        with self._lock:
            i = seq % self.capacity
            if self._buf[i] is slot:  # not overwritten meanwhile
                self._buf[i] = flow
                self._how[i] = None
        return flow

    def record_lost(
        self, source: LostEventSource | str, n: int, cpu: int | None = None, node_name: str = ""
    ) -> None:
        """Count `n` events lost at `source` and store a LostEvent record for readers."""
        if n <= 0:
            return
        src = LostEventSource(source)
        with self._lock:
            self._lost[src.value] = self._lost.get(src.value, 0) + n
        self._store([LostEvent(src, n, cpu, time=self._clock_ns(), node_name=node_name)], [None],
                    flows=0)

    # -- reading -----------------------------------------------------------------------------

    @property
    def write_seq(self) -> int:
        """Sequence number the next record will get (records ever stored)."""
        return self._next

    def _oldest(self) -> int:
        return max(0, self._next - self.capacity)

    def _slices(self, start: int, stop: int) -> tuple[list[_Slot], list[Materializer | None]]:
        """Slots [start, stop) and their materializers; under the lock."""
        return self._slice(start, stop, self._buf), self._slice(start, stop, self._how)

    def _slice(self, start: int, stop: int, buf: list[Any]) -> list[Any]:
        cap = self.capacity
        a, b = start % cap, stop % cap
        if stop - start == 0:
            return []
        if a < b:
            out = buf[a:b]
        else:
            out = buf[a:] + buf[:b]
        return out  # type: ignore[return-value]  # every slot in [oldest, next) is set

    def snapshot(self) -> tuple[Records, int]:
        """All held records, oldest first, and the sequence number after the last one. Flows
        of deferred slots are built as the returned sequence is read."""
        with self._lock:
            start, stop = self._oldest(), self._next
            slots, hows = self._slices(start, stop)
        return Records(self, start, slots, hows), stop

    def get(
        self,
        number: int = 0,
        *,
        first: bool = False,
        since: int | None = None,
        until: int | None = None,
        predicate: Callable[[Flow], bool] | None = None,
    ) -> list[Record]:
        """Stored records selected as `select_records` does."""
        records, _ = self.snapshot()
        return select_records(records, number, first=first, since=since, until=until,
                              predicate=predicate)

    def read(self, pos: int, limit: int = 4096) -> tuple[list[Record], int, int]:
        """Records from sequence `pos`: (records, next position, records missed)."""
        with self._lock:
            oldest = self._oldest()
            missed = oldest - pos if pos < oldest else 0
            start = max(pos, oldest)
            stop = min(self._next, start + limit)
            slots, hows = self._slices(start, stop)
        pairs = enumerate(zip(slots, hows, strict=True))
        built = [self._materialize(start + i, slot, how) for i, (slot, how) in pairs]
        return built, stop, missed

    def wait(self, pos: int, timeout: float | None) -> bool:
        """Block until a record at or after `pos` exists; False on timeout."""
        with self._cond:
            if self._next > pos:
                return True
            self._waiters += 1
            try:
                return self._cond.wait_for(lambda: self._next > pos, timeout)
            finally:
                self._waiters -= 1

    def wake_all(self) -> None:
        """Wake blocked readers (at shutdown) so they can notice they should stop."""
        with self._cond:
            self._cond.notify_all()

    def follow(self, pos: int | None = None) -> Cursor:
        """A cursor at `pos`, or at the end of the ring (only new records)."""
        return Cursor(self, self._next if pos is None else pos)

    # -- status ------------------------------------------------------------------------------

    def flows_rate(self) -> float:
        """Flows per second whose time falls in the last `rate_window_s` seconds."""
        now = self._clock_ns()
        cutoff = now - int(self.rate_window_s * 1e9)
        with self._lock:
            start, stop = self._oldest(), self._next
            slots, hows = self._slices(start, stop)
        count = 0
        for slot, how in zip(reversed(slots), reversed(hows), strict=True):
            if isinstance(slot, LostEvent):
                continue  # lost-event records are not flows
            t = _time(slot, how)
            if t < cutoff:
                break
            if t <= now:
                count += 1
        return count / self.rate_window_s

    def stats(self) -> RingStats:
        with self._lock:
            held = min(self._next, self.capacity)
            overwritten = self._oldest()
            seen, lost = self._seen, dict(self._lost)
        return RingStats(
            num_flows=held,
            max_flows=self.capacity,
            seen_flows=seen,
            overwritten=overwritten,
            lost=lost,
            uptime_ns=self._clock_ns() - self._started_ns,
            flows_rate=self.flows_rate(),
        )


def _time(slot: _Slot, how: Materializer | None) -> int:
    """A slot's time, without building a deferred flow."""
    if type(slot) is bytes:
        assert how is not None
        return how.time(slot)
    return slot.time  # type: ignore[union-attr]


class Records(Sequence[Record]):
    """A snapshot of the ring's slots that builds deferred flows as they are read."""

    def __init__(self, ring: FlowRing, start: int, slots: list[_Slot],
                 hows: list[Materializer | None]) -> None:
        self._ring = ring
        self._start = start
        self._slots = slots
        self._hows = hows

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, i: int) -> Record: ...

    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...

    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self._slots)))]
        if i < 0:
            i += len(self._slots)
        rec = self._ring._materialize(self._start + i, self._slots[i], self._hows[i])
        self._slots[i] = rec
        return rec

    def __iter__(self) -> Iterator[Record]:
        for i in range(len(self._slots)):
            yield self[i]

    def times(self) -> list[int]:
        """Every record's time, without building deferred flows."""
        return [_time(slot, how) for slot, how in zip(self._slots, self._hows, strict=True)]

    def __reversed__(self) -> Iterator[Record]:
        for i in range(len(self._slots) - 1, -1, -1):
            yield self[i]


class Cursor:
    """A reader's position in a ring. Not thread-safe: one cursor per reader."""

    def __init__(self, ring: FlowRing, pos: int) -> None:
        self.ring = ring
        self.pos = pos

    def poll(self, limit: int = 4096) -> list[Record]:
        """New records without blocking; a LostEvent first if the ring overtook us."""
        records, self.pos, missed = self.ring.read(self.pos, limit)
        if missed:
            lost = LostEvent(LostEventSource.HUBBLE_RING_BUFFER, missed, time=time.time_ns())
            return [lost, *records]
        return records

    def wait(self, timeout: float | None = None, limit: int = 4096) -> list[Record]:
        """New records, blocking up to `timeout` seconds for the first one."""
        if not self.ring.wait(self.pos, timeout):
            return []
        return self.poll(limit)


def select_records(
    records: Sequence[Record] | Iterable[Record],
    number: int = 0,
    *,
    first: bool = False,
    since: int | None = None,
    until: int | None = None,
    predicate: Callable[[Flow], bool] | None = None,
) -> list[Record]:
    """Records in [since, until] whose flows pass `predicate`; then the first or last
    `number` flows (0: all). Lost-event records bypass the predicate and are kept when they
    fall inside the selected span: from the start up to the N-th flow with `first`, from the
    N-th newest flow to the end otherwise.

    The last N are found walking backwards and stop at the N-th, and a `Records` snapshot
    checks since/until on its records' times before building them, so it builds only the
    flows it has to look at."""
    backwards = number > 0 and not first
    if not isinstance(records, Sequence):
        records = list(records)
    window = since is not None or until is not None
    times = records.times() if window and isinstance(records, Records) else None
    order = range(len(records) - 1, -1, -1) if backwards else range(len(records))
    out: list[Record] = []
    flows = 0
    for i in order:
        if window:
            t = times[i] if times is not None else records[i].time
            if since is not None and t < since:
                continue
            if until is not None and t > until:
                continue
        rec = records[i]
        if isinstance(rec, Flow):
            if predicate is not None and not predicate(rec):
                continue
            flows += 1
        out.append(rec)
        if number > 0 and flows == number:
            break
    return out[::-1] if backwards else out
