"""The ingestion path's per-event costs, measured in process without the producer: what
emitting an event costs the program in the kernel (BPF_PROG_TEST_RUN with flow events on and
off), each of the reader's steps on the recorded event, and a read of the mapped ring.
``IngestBench`` (bench/observe/ingest.py) runs them before its producer runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from agent.datapath.controller import DatapathController
from agent.datapath.flowevents import RECORD_SIZE
from agent.datapath.programs import Datapath
from agent.datapath.ringbuf import MappedRingBuffer
from agent.flows.ingest import FlowIngest
from agent.flows.store import FlowRing
from agent.metrics import FlowMetrics, MetricsConfig
from bench.observe import workload
from bench.observe.bccring import Count, close_ring
from bench.observe.pinned import CFG_FLOW_EVENTS_OFF


@dataclass(frozen=True)
class StepCost:
    step: str
    us: float  # CPU µs per event, the best of a few rounds on the consumer's core

    @property
    def per_s(self) -> float:
        return 1e6 / self.us if self.us > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "us_per_event": round(self.us, 2),
                "events_per_s": round(self.per_s)}


def best_us(fn: Callable[[], object], n: int, rounds: int) -> float:
    """CPU µs per call of ``fn``: the best of ``rounds`` rounds of ``n`` calls."""
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()  # CPU time: the machine's other load does not count
        for _ in range(n):
            fn()
        best = min(best, time.thread_time() - started)
    return best / n * 1e6


def emit_cost(dp: Datapath, packet: bytes, rounds: int = 10, repeat: int = 5_000
              ) -> dict[str, Any]:
    """The program's mean run time (BPF_PROG_TEST_RUN's own clock) with flow events on and
    off, alternating, the ring drained between runs so every submit succeeds."""
    from agent.datapath.testrun import SkBuff, test_run

    config = dp.table("tulle_config_v1")
    key = config.Key(CFG_FLOW_EVENTS_OFF)
    counter = Count()
    dp.table("flow_events_v1").open_ring_buffer(counter.on_event)
    ctx = SkBuff()
    ctx.ifindex = workload.ENDPOINT_IFINDEX
    lost0 = dp.events_lost()
    times: dict[bool, list[int]] = {True: [], False: []}
    try:
        for i in range(rounds):
            for on in ((True, False) if i % 2 == 0 else (False, True)):
                config[key] = config.Leaf(0 if on else 1)
                times[on].append(test_run(dp.from_pod_fd, packet, repeat=repeat,
                                          ctx=ctx).duration_ns)
                counter.consume_all(dp)
    finally:
        config[key] = config.Leaf(0)
        close_ring(dp)
    on_ns, off_ns = statistics.median(times[True]), statistics.median(times[False])
    return {"on_ns": round(on_ns), "off_ns": round(off_ns),
            "event_ns": round(on_ns - off_ns), "rounds": rounds, "repeat": repeat,
            "events": counter.n, "lost": dp.events_lost() - lost0}


def step_costs(dp: Datapath, sample: bytes, packet: bytes, n: int = 20_000, rounds: int = 3,
               batch: int = 1_000) -> list[StepCost]:
    """The reader's steps timed alone on the recorded event, and what a read costs."""
    ring = FlowRing()
    metrics = FlowMetrics(MetricsConfig(), CollectorRegistry())
    controller = DatapathController(workload.NODE, dp, FlowIngest(ring, (metrics,)))
    reader = controller.events
    try:
        controller.index = workload.endpoint_index()
        reader.drain([sample])  # warm the caches as a running agent has them
        raw, how = ring._buf[0], ring._how[0]
        assert isinstance(raw, bytes) and how is not None
        steps: list[tuple[str, Callable[[], object], int]] = [
            (f"resolve, count and store (EventReader.drain, batches of {batch:,})",
             lambda: reader.drain([sample] * batch), batch),
            ("build the flow when a reader reads it (decode + apply peers)",
             lambda: how.flow(raw), 1),
        ]
        costs = [StepCost(f"read the mapped ring (MappedRingBuffer.read, batches of "
                          f"{batch:,})", read_cost(dp, packet, batch, rounds))]
        return costs + [StepCost(name, best_us(fn, max(1, n // per), rounds) / per)
                        for name, fn, per in steps]
    finally:
        controller.close_netlink()


def read_cost(dp: Datapath, packet: bytes, batch: int, rounds: int) -> float:
    """CPU µs per record of MappedRingBuffer.read on `batch` real records (best round)."""
    from agent.datapath.testrun import SkBuff, test_run

    table = dp.table("flow_events_v1")
    mapped = MappedRingBuffer(table.map_fd, table.max_entries, RECORD_SIZE)
    ctx = SkBuff()
    ctx.ifindex = workload.ENDPOINT_IFINDEX
    best = float("inf")
    try:
        while mapped.read():
            pass
        for _ in range(rounds * 3):
            test_run(dp.from_pod_fd, packet, repeat=batch, ctx=ctx)
            started = time.thread_time()
            got = mapped.read()
            took = time.thread_time() - started
            if len(got) == batch:
                best = min(best, took)
    finally:
        mapped.close()
    return best / batch * 1e6 if best != float("inf") else 0.0
