"""bench/trace's waypoint CPU per request (a load-robust cost figure) and ``--pin``."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace
from typing import Any

import pytest

from bench.l4.labs import BenchError
from bench.l4.wrk import WrkResult
from bench.trace import overhead
from bench.trace.cli import TARGET_HEADER, parse_args, run_rows, target_rows
from bench.trace.overhead import TraceBench, TraceRun, cpu_pair_ratios, summary

WRK_REPORT = """Running 5s test @ http://10.96.200.11:8080/
  Latency Distribution
     50%  300.00us
     75%  400.00us
     90%  500.00us
     99%    1.20ms
  5000 requests in 5.00s, 1.00MB read
Requests/sec:   1000.00
"""


def run(pair: int, on: bool, requests: int, cpu_s: float) -> TraceRun:
    return TraceRun("waypoint", pair, on, WrkResult(requests / 5, requests, 5.0, 1.0, 2.0),
                    0.5, 0.1, cpu_s)


def test_the_waypoints_cpu_per_request_is_compared_on_over_off_per_pair() -> None:
    runs = [run(0, True, 1000, 0.11), run(0, False, 1000, 0.10),  # 110 vs 100 µs/request
            run(1, False, 2000, 0.20), run(1, True, 1000, 0.104),  # 104 vs 100
            run(2, True, 1000, 0.0), run(2, False, 1000, 0.1)]  # no CPU figure: skipped
    assert run(0, True, 1000, 0.11).waypoint_us_per_request == pytest.approx(110)
    assert cpu_pair_ratios(runs) == pytest.approx([1.1, 1.04])
    s = summary(runs, "waypoint")
    assert s["median_cpu_cost_pct"] == 7.0  # median of +10% and +4%
    assert s["cpu_pair_ratios"] == [1.1, 1.04]
    row = target_rows({"waypoint": {"what": "W", **s}})[0]
    assert row[TARGET_HEADER.index("waypoint CPU/request")] == "+7.0%"
    assert row[TARGET_HEADER.index("cost, 95% interval")] == "too few pairs"  # 3 pairs


def test_no_requests_or_no_cpu_gives_no_figure_rather_than_a_division() -> None:
    assert run(0, True, 0, 0.1).waypoint_us_per_request is None
    assert summary([run(0, True, 0, 0.1), run(0, False, 10, 0.1)],
                   "waypoint")["median_cpu_cost_pct"] is None
    rows = run_rows([run(0, True, 0, 0.1).to_json()])
    assert rows[0][-1] == "n/a"


def test_an_old_report_without_cpu_figures_still_renders() -> None:
    old = {"what": "W", "pair_ratios": [0.99], "median_ratio": 0.99, "median_cost_pct": 1.0}
    row = target_rows({"waypoint": old})[0]
    assert row[TARGET_HEADER.index("waypoint CPU/request")] == "n/a"
    assert row[TARGET_HEADER.index("cost, 95% interval")] == "n/a"
    assert run_rows([{"workload": "waypoint", "pair": 0, "tracing": "on", "rps": 1.0,
                      "p99_ms": 1.0, "lab_cores": 0.1, "load1": 0.5}])[0][-1] == "n/a"


class FakeRunner:
    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.argv: tuple[str, ...] = ()

    def client_exec(self, _lab: object, *argv: str, external: bool, timeout: float,
                    check: bool) -> subprocess.CompletedProcess[str]:
        self.argv = argv
        return subprocess.CompletedProcess(list(argv), 1 if not self.stdout else 0,
                                           self.stdout, "wrk: boom")

    def wrk(self, *_a: Any, **_k: Any) -> WrkResult:
        raise AssertionError("a pinned bench runs its own wrk")


def test_pinned_wrk_runs_on_its_own_cpu() -> None:
    bench = TraceBench(5, 2, lambda _m: None, pin=True)
    runner = FakeRunner(WRK_REPORT)
    lab = SimpleNamespace(name="benchtrace")
    result = bench.wrk(lab, runner, "http://x/", False)  # type: ignore[arg-type]
    assert result.requests == 5000
    assert runner.argv[:3] == ("taskset", "-c", str(overhead.WRK_CPU))
    assert runner.argv[3] == "wrk" and runner.argv[-1] == "http://x/"


def test_a_pinned_wrk_that_prints_no_report_is_a_bench_error() -> None:
    bench = TraceBench(5, 2, lambda _m: None, pin=True)
    with pytest.raises(BenchError, match="pinned wrk against http://x/ failed"):
        bench.wrk(SimpleNamespace(name="l"), FakeRunner(""), "http://x/", True)  # type: ignore[arg-type]


def test_pin_puts_the_waypoint_on_its_cpu_by_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, set[int]]] = []
    monkeypatch.setattr(overhead.os, "sched_setaffinity", lambda pid, cpus: calls.append(
        (pid, set(cpus))))
    monkeypatch.setattr(overhead.os, "cpu_count", lambda: 2)
    bench = TraceBench(5, 2, lambda _m: None, pin=True)
    bench.pin_waypoint(SimpleNamespace(process_pids=lambda: {overhead.WAYPOINT: 4242}))  # type: ignore[arg-type]
    assert calls == [(4242, {overhead.WAYPOINT_CPU})]
    assert "pid 4242" in bench.notes[-1]


def test_pin_refuses_without_the_waypoint_or_a_second_cpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overhead.os, "sched_setaffinity", lambda *_a: pytest.fail("pinned"))
    bench = TraceBench(5, 2, lambda _m: None, pin=True)
    monkeypatch.setattr(overhead.os, "cpu_count", lambda: 2)
    with pytest.raises(BenchError, match="not running"):
        bench.pin_waypoint(SimpleNamespace(process_pids=lambda: {}))  # type: ignore[arg-type]
    monkeypatch.setattr(overhead.os, "cpu_count", lambda: 1)
    with pytest.raises(BenchError, match="needs 2 CPUs"):
        bench.pin_waypoint(SimpleNamespace(process_pids=lambda: {overhead.WAYPOINT: 1}))  # type: ignore[arg-type]


def test_pin_is_a_flag_of_the_cli() -> None:
    assert parse_args(["--pin"]).pin is True
    assert parse_args([]).pin is False


def test_split_opcodes_counts_the_waypoints_opcodes_with_the_split_on_and_off(
        capsys: pytest.CaptureFixture[str]) -> None:
    from bench.l7 import split_opcodes
    from l7proxy import timing

    split_opcodes.main(["--requests", "5"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    off, on = (float(x.split()[-1].rstrip(",")) for x in last.split(", ")[:2])
    assert off > 0 and on > off  # the split takes marks only when on
    assert timing.SPLIT.on  # left as the process had it
