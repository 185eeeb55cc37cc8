"""The flow ring: overwrite, lost-event accounting, selection, follow wakeup, rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from agent.flows.flow import Flow, LostEvent, LostEventSource
from agent.flows.store import FlowRing, Record, select_records


def flows(n: int, start: int = 1) -> list[Flow]:
    return [Flow(time=start + i, uuid=str(start + i)) for i in range(n)]


def ids(records: Sequence[Record]) -> list[str]:
    return [r.uuid if isinstance(r, Flow) else f"lost:{r.num_events_lost}" for r in records]


def test_overwrite_oldest_and_count() -> None:
    ring = FlowRing(4)
    ring.put_many(flows(3))
    s = ring.stats()
    assert (s.num_flows, s.max_flows, s.seen_flows, s.overwritten) == (3, 4, 3, 0)
    for f in flows(3, start=4):
        ring.put(f)
    assert ids(ring.get()) == ["3", "4", "5", "6"]
    s = ring.stats()
    assert (s.num_flows, s.seen_flows, s.overwritten) == (4, 6, 2)
    with pytest.raises(ValueError, match="capacity"):
        FlowRing(0)


def test_lost_events_are_counted_per_source_and_delivered() -> None:
    ring = FlowRing(10)
    ring.put_many(flows(2))
    ring.record_lost(LostEventSource.PERF_EVENT_RING_BUFFER, 5, cpu=0)
    ring.record_lost("PERF_EVENT_RING_BUFFER", 2, cpu=1)
    ring.record_lost(LostEventSource.OBSERVER_EVENTS_QUEUE, 1)
    ring.record_lost(LostEventSource.OBSERVER_EVENTS_QUEUE, 0)  # nothing lost: no record
    ring.put_many(flows(1, start=3))
    assert ring.stats().lost == {"PERF_EVENT_RING_BUFFER": 7, "OBSERVER_EVENTS_QUEUE": 1}
    assert ring.stats().seen_flows == 3
    records = ring.get()
    assert ids(records) == ["1", "2", "lost:5", "lost:2", "lost:1", "3"]
    lost = records[2]
    assert isinstance(lost, LostEvent) and lost.cpu == 0
    # Lost-event records bypass flow filters but not the number of flows asked for.
    assert ids(ring.get(predicate=lambda f: f.uuid == "3")) == ["lost:5", "lost:2", "lost:1", "3"]
    assert ids(ring.get(1)) == ["3"]
    assert ids(ring.get(2)) == ["2", "lost:5", "lost:2", "lost:1", "3"]


def test_select_first_last_since_until() -> None:
    recs = flows(10)
    assert ids(select_records(recs, 3)) == ["8", "9", "10"]
    assert ids(select_records(recs, 3, first=True)) == ["1", "2", "3"]
    assert ids(select_records(recs, since=4, until=6)) == ["4", "5", "6"]
    assert ids(select_records(recs, 2, since=4, until=8)) == ["7", "8"]
    assert ids(select_records(recs, 0, predicate=lambda f: int(f.uuid) % 4 == 0)) == ["4", "8"]


def test_cursor_sees_only_new_flows_and_reports_overrun() -> None:
    ring = FlowRing(4)
    ring.put_many(flows(2))
    cur = ring.follow()
    assert cur.poll() == []
    ring.put_many(flows(2, start=3))
    assert ids(cur.poll()) == ["3", "4"]
    ring.put_many(flows(7, start=5))  # 7 new flows into a ring of 4: 3 overwritten unread
    batch = cur.poll()
    assert isinstance(batch[0], LostEvent)
    assert batch[0].source == LostEventSource.HUBBLE_RING_BUFFER
    assert ids(batch) == ["lost:3", "8", "9", "10", "11"]
    records, pos = ring.snapshot()
    assert ids(records) == ["8", "9", "10", "11"] and pos == 11


def test_follow_wakes_up_on_put() -> None:
    ring = FlowRing(100)
    cur = ring.follow()
    got: list[list[str]] = []

    def reader() -> None:
        got.append(ids(cur.wait(timeout=5)))

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.05)
    started = time.monotonic()
    ring.put(Flow(time=1, uuid="x"))
    t.join(5)
    assert got == [["x"]]
    assert time.monotonic() - started < 1.0
    assert cur.wait(timeout=0.01) == []  # times out when nothing new


def test_flows_rate_over_window() -> None:
    now = [100 * 10**9]
    ring = FlowRing(1000, rate_window_s=10, clock_ns=lambda: now[0])
    ring.put_many(Flow(time=now[0] - 20 * 10**9) for _ in range(50))  # too old
    ring.put_many(Flow(time=now[0] - i * 10**8) for i in range(30, 0, -1))  # last 3 s
    assert ring.flows_rate() == pytest.approx(3.0)
    now[0] += 5 * 10**9
    assert ring.stats().flows_rate == pytest.approx(3.0)
    assert ring.stats().uptime_ns == 5 * 10**9
    now[0] += 10 * 10**9
    assert ring.flows_rate() == 0.0


class Built:
    """A materializer for deferred slots: raw is the flow's uuid; counts what it builds."""

    def __init__(self) -> None:
        self.built: list[bytes] = []

    def flow(self, raw: bytes) -> Flow:
        self.built.append(raw)
        return Flow(time=int(raw), uuid=raw.decode())

    def time(self, raw: bytes) -> int:
        return int(raw)


def test_deferred_slots_are_built_once_when_read() -> None:
    ring, how = FlowRing(10), Built()
    ring.put_deferred([str(i).encode() for i in range(1, 6)], [how] * 5)
    assert ring.stats().seen_flows == 5 and how.built == []
    assert ids(ring.get(2)) == ["4", "5"] and how.built == [b"5", b"4"]
    assert ids(ring.get()) == ["1", "2", "3", "4", "5"]
    assert ids(ring.get()) == ["1", "2", "3", "4", "5"]
    assert sorted(how.built) == [b"1", b"2", b"3", b"4", b"5"]  # each built once
    cur = ring.follow(0)
    ring.put_deferred([b"6"], [how])
    assert ids(cur.poll()) == ["1", "2", "3", "4", "5", "6"]


def test_a_snapshot_read_after_its_slots_were_overwritten_keeps_the_new_records() -> None:
    ring, how = FlowRing(3), Built()
    ring.put_deferred([b"1", b"2", b"3"], [how] * 3)
    records, _ = ring.snapshot()
    ring.put_deferred([b"7", b"8", b"9"], [how] * 3)  # the ring moved on
    assert ids(records) == ["1", "2", "3"]  # the snapshot still reads what it saw
    assert ids(ring.get()) == ["7", "8", "9"]  # and did not write its flows over newer slots


def test_rate_reads_deferred_times_without_building() -> None:
    now = [100 * 10**9]
    ring, how = FlowRing(100, rate_window_s=10, clock_ns=lambda: now[0]), Built()
    ring.put_deferred([str(now[0] - i * 10**8).encode() for i in range(30, 0, -1)], [how] * 30)
    assert ring.flows_rate() == pytest.approx(3.0)
    assert how.built == []


def test_deferred_batches_wrap_and_overflow_like_single_puts() -> None:
    for capacity in (1, 3, 7):
        for sizes in ([2, 2, 2], [5], [1, 9, 1], [7, 3]):
            deferred, single, how = FlowRing(capacity), FlowRing(capacity), Built()
            n = 0
            for size in sizes:
                batch = [str(n + i + 1).encode() for i in range(size)]
                deferred.put_deferred(batch, [how] * size)
                for raw in batch:
                    single.put(how.flow(raw))
                n += size
                assert ids(deferred.get()) == ids(single.get())
                d, s = deferred.stats(), single.stats()
                assert (d.num_flows, d.seen_flows, d.overwritten) == (
                    s.num_flows, s.seen_flows, s.overwritten) == (min(n, capacity), n,
                                                                  max(0, n - capacity))


def test_deferred_records_need_one_materializer_each() -> None:
    with pytest.raises(ValueError, match="2 raw records but 1 materializers"):
        FlowRing(4).put_deferred([b"1", b"2"], [Built()])


def test_a_time_window_builds_only_the_flows_inside_it() -> None:
    ring, how = FlowRing(100), Built()
    ring.put_deferred([str(t).encode() for t in range(1, 51)], [how] * 50)
    assert ids(ring.get(since=41, until=45)) == ["41", "42", "43", "44", "45"]
    assert sorted(how.built) == [b"41", b"42", b"43", b"44", b"45"]
    assert ids(ring.get(2, since=10, until=20)) == ["19", "20"]
    assert ids(ring.get(2, first=True, since=10)) == ["10", "11"]
