"""bench.control.firstsync's RSS sampling: when the agent's RSS peaked, and a 100 ms timeline."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.control.firstsync import RssSampler, _wait_for_log


def test_the_summary_names_the_peak_and_keeps_each_100ms_highest() -> None:
    sampler = RssSampler(None)  # no process: samples given by hand
    sampler.samples = [(0.01, 50.0), (0.06, 80.0), (0.12, 70.0), (0.31, 299.5), (0.33, 260.0)]
    summary = sampler.summary()
    assert summary["rss_peak_at_s"] == 0.31 and summary["rss_sampled_peak_mb"] == 299.5
    assert summary["rss_timeline_mb"] == {0.0: 80.0, 0.1: 70.0, 0.3: 299.5}
    assert RssSampler(None).summary() == {}


def test_the_sampler_reads_a_live_process_and_stops() -> None:
    sampler = RssSampler(os.getpid())
    try:
        for _ in range(500):
            if len(sampler.samples) >= 3:
                break
            time.sleep(0.01)
    finally:
        sampler.stop.set()
    assert len(sampler.samples) >= 3 and all(mb > 1 for _at, mb in sampler.samples)


def test_waiting_for_the_tracer_line_in_a_log(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    log.write_text("datapath compiled\n")
    assert not _wait_for_log(log, ("tracing hooks in use",), 0.0)
    log.write_text("datapath compiled\ntracing hooks in use: tracepoint:skb:kfree_skb\n")
    assert _wait_for_log(log, ("tracing hooks in use",), float("inf"))


def test_the_timeline_spans_a_call_and_names_its_thread() -> None:
    from bench.control import fstimeline

    fstimeline._SPANS.clear()
    wrapped = fstimeline.span("work", lambda n: sum(range(n)), lambda n: f"n={n}")
    assert wrapped(100_000) == sum(range(100_000))
    (row,) = fstimeline._SPANS
    assert row["span"] == "work n=100000" and row["thread"] == "MainThread"
    assert row["end"] >= row["start"] > 0 and row["cpu_s"] >= 0 and row["runq_s"] >= 0
    text = fstimeline.summarize({"spans": [row], "samples": [
        {"at": 1.0, "threads": {"bcc:7": [0.5, 0.1], "idle:8": [0.0, 0.0]}}]})
    assert "| work n=100000 | MainThread |" in text
    assert "- bcc:7: 0.5 / 0.1" in text and "idle:8" not in text
    fstimeline._SPANS.clear()
