"""A tracer feed whose batches fail: tracing goes on, the records are counted lost, the
failures show in the health report and `tulle lab status`, and the log is not flooded."""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.flows.flow import LostEvent, LostEventSource
from agent.flows.ingest import FlowIngest
from agent.flows.store import FlowRing
from agent.tracing import feed as feed_module
from agent.tracing.feed import TraceFeed
from agent.tracing.health import FAILURE_LOG_INTERVAL_S, FeedHealth
from agent.tracing.start import Tracing
from agent.tracing.tracer import SOCKOPS, HookPlan
from lab import labstatus
from lab.topology import plan_lab

from .golden import LAYOUT
from .test_switch import StubTracer


def test_the_first_failure_is_logged_then_one_a_minute_with_the_count_since() -> None:
    health = FeedHealth()
    err = KeyError("trace_gen_v1")
    assert health.failed(err, now=100.0, wall=1e9) == 0
    assert [health.failed(err, now=100.0 + t, wall=1e9) for t in (0.2, 30, 59.9)] == [None] * 3
    assert health.failed(err, now=100.0 + FAILURE_LOG_INTERVAL_S, wall=2e9) == 3
    assert health.failed(err, now=170.0, wall=2e9) is None
    assert health.report() == {"records": 0, "failed_batches": 6,
                               "last_error": "KeyError: 'trace_gen_v1'",
                               "last_error_time": 2e9}


class RingTracer(StubTracer):
    """Hands out one record per drain, `drains` times, then sets `stop`."""

    def __init__(self, stop: threading.Event, drains: int) -> None:
        super().__init__()
        self.stop, self.left = stop, drains

    def read_raw(self) -> list[bytes]:
        self.left -= 1
        if self.left <= 0:
            self.stop.set()
        return [bytes(ctypes.sizeof(LAYOUT))]

    def close(self) -> None:
        pass


def broken_index() -> Any:
    raise RuntimeError("the endpoint index is broken")


def test_a_failing_batch_is_counted_lost_and_tracing_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(feed_module, "DRAIN_INTERVAL_S", 0.0)
    stop = threading.Event()
    ring = FlowRing(64)
    tracer = RingTracer(stop, drains=5)
    feed = TraceFeed(tracer, FlowIngest(ring), broken_index, lambda: [],  # type: ignore[arg-type]
                     "node1", reasons={})
    with caplog.at_level(logging.ERROR, logger="tulle.tracing"):
        feed.run(stop)
    # every drain ran (five in the loop, the fifth setting stop, and the last one after it),
    # and each failed
    assert tracer.left == -1
    assert feed.health.records == 6
    assert feed.health.failed_batches == 6
    assert feed.health.last_error == "RuntimeError: the endpoint index is broken"
    records, _next = ring.snapshot()
    lost = [r for r in records if isinstance(r, LostEvent)]
    assert [(e.source, e.num_events_lost) for e in lost] == (
        [(LostEventSource.OBSERVER_EVENTS_QUEUE, 1)] * 6)
    failures = [r for r in caplog.records if "a batch failed" in r.getMessage()]
    assert len(failures) == 1  # not one traceback per drain
    assert failures[0].exc_info is not None


def test_the_health_report_and_lab_status_show_the_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    health = FeedHealth(records=12)
    health.failed(KeyError("trace_gen_v1"), now=1.0, wall=time.time())
    plan = HookPlan(("trace_sock.c", "trace_sockops.c"), ("tracepoint:x", SOCKOPS), (),
                    "/sys/fs/cgroup/tulle/node1")
    report = Tracing(plan, health).report()
    assert report["hooks"] == ["tracepoint:x", SOCKOPS]
    assert report["rtt"] == "sock_ops"
    assert report["records"] == 12 and report["failed_batches"] == 1
    node = plan_lab("demo", 1).nodes[0]
    monkeypatch.setattr(labstatus, "agent_health", lambda _paths, _node: Path("/nowhere"))
    monkeypatch.setattr(labstatus, "read_json", lambda _path: {
        "time": time.time(), "ready": True, "revision": 3, "objects": 9, "tracing": report})
    healthy, detail = labstatus._node_health(None, node)  # type: ignore[arg-type]
    assert healthy
    assert "tracing on 2 hooks (RTT from sock_ops)" in detail
    assert "tracer: 1 batches failed, last: KeyError: 'trace_gen_v1'" in detail
    report_ok = Tracing(plan, FeedHealth(records=12)).report()
    monkeypatch.setattr(labstatus, "read_json", lambda _path: {
        "time": time.time(), "ready": True, "tracing": report_ok})
    assert "failed" not in labstatus._node_health(None, node)[1]  # type: ignore[arg-type]
