"""``bench.trace --attribute``: per-program and per-syscall readings per request."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from bench.l4.labs import BenchError
from bench.trace import overhead
from bench.trace.attribution import (
    ALL,
    ProgRuns,
    Sample,
    process_rows,
    prog_runs,
    samples_json,
    schedstat_ns,
    stat_times,
    summarize,
    syscall_delta,
    syscall_rows,
    waypoint_rows,
)
from bench.trace.cli import parse_args, render_markdown
from bench.tracecost_stats import ProgInfo, ProgStats


def test_syscalls_made_between_two_readings_by_name_and_in_all() -> None:
    before = {"getsockopt": 10, "writev": 100, "close": 3}
    after = {"getsockopt": 12, "writev": 190, "close": 3, "accept4": 1}
    assert syscall_delta(before, after) == {"getsockopt": 2, "writev": 90, "accept4": 1,
                                            ALL: 93}
    assert syscall_delta({}, {}) == {ALL: 0}


def test_proc_stat_and_schedstat() -> None:
    stat = "901 (python (waypoint)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0"
    assert stat_times(stat, 100) == (2.5, 0.5)
    assert schedstat_ns(["1000 5 7\n", "", "234 1 1\n"]) == 1234


def test_prog_runs_sums_copies_and_leaves_out_a_program_loaded_meanwhile() -> None:
    infos = {1: ProgInfo("trace_sockops", 222), 2: ProgInfo("trace_sockops", 222)}
    before = {1: ProgStats(1, 13, 100, 1), 2: ProgStats(2, 13, 0, 0),
              3: ProgStats(3, 3, 0, 0)}
    after = {1: ProgStats(1, 13, 1100, 11), 2: ProgStats(2, 13, 500, 5),
             3: ProgStats(3, 3, 70, 7), 4: ProgStats(4, 5, 9, 9)}
    assert prog_runs(infos, before, after) == (
        ProgRuns("prog 3", "tc", 7, 70), ProgRuns("trace_sockops", "sock_ops", 15, 1500))


def sample(on: bool, requests: int, ns: int, runs: int, sys_s: float, gso: int) -> Sample:
    return Sample(on, requests, (ProgRuns("trace_sockops", "sock_ops", runs, ns),
                                 ProgRuns("from_pod", "tc", requests, 100 * requests)),
                  user_s=requests * 80e-6, sys_s=sys_s, run_ns=requests * 90_000,
                  syscalls={ALL: 6 * requests, "getsockopt": gso},
                  process_cpu={"agent-node1": requests * (3e-6 if on else 1e-6)})


def test_summary_is_per_request_on_against_off_largest_addition_first() -> None:
    samples = [sample(True, 1000, 600_000, 2000, 0.012, 10),
               sample(True, 3000, 1_800_000, 6000, 0.036, 30),
               sample(False, 2000, 0, 0, 0.016, 0)]
    att = summarize(samples)
    assert att["requests"] == {"on": 4000, "off": 2000}
    first, second = att["programs"]
    assert (first["program"], first["on_calls_per_request"], first["on_ns_per_call"],
            first["on_ns_per_request"], first["off_ns_per_request"],
            first["added_ns_per_request"]) == ("trace_sockops", 2.0, 300.0, 600.0, 0.0, 600.0)
    assert (second["program"], second["added_ns_per_request"]) == ("from_pod", 0.0)
    assert att["waypoint"]["on"]["system_us"] == 12.0
    assert att["waypoint"]["off"]["system_us"] == 8.0
    assert waypoint_rows(att)[1] == ["system CPU µs (ticks)", "12.00", "8.00", "4.00"]
    assert process_rows(att) == [["agent-node1", "3.00", "1.00", "2.00"]]
    assert process_rows({"programs": []}) == []  # a report from before the column
    assert syscall_rows(att) == [["every system call", "6.000", "6.000"],
                                 ["getsockopt", "0.010", "0.000"]]


def test_summary_without_runs_of_a_state_divides_by_nothing() -> None:
    att = summarize([sample(True, 0, 0, 0, 0.0, 0)])
    assert att["programs"][0]["on_ns_per_call"] is None
    assert att["waypoint"]["off"]["run_us"] == 0.0


def test_the_flag_and_the_report_section() -> None:
    assert parse_args(["--attribute"]).attribute
    assert not parse_args([]).attribute
    att = summarize([sample(True, 10, 60, 20, 0.0, 1), sample(False, 10, 0, 0, 0.0, 0)])
    rep: dict[str, Any] = {"date": "d", "method": "m", "targets": [], "notes": [], "runs": [],
                           "machine": {}, "command": "c", "attribution": att}
    md = render_markdown(rep)
    assert "## Attribution (--attribute)" in md
    assert "| trace_sockops | sock_ops | 2.000 |" in md
    assert "## Attribution" not in render_markdown({**rep, "attribution": None})


def test_attribution_refuses_without_the_waypoint_or_an_agent() -> None:
    bench = overhead.TraceBench(3, 1, lambda _m: None, attribute=True)
    lab: Any = SimpleNamespace(process_pids=lambda: {"agent-node1": 10, "agent-node2": 11})
    with pytest.raises(BenchError, match="waypoint-node1"):
        bench.start_attribution(lab, overhead.ExitStack())
    assert bench.attributor is None


def test_each_runs_readings_are_kept_as_json() -> None:
    got = samples_json([sample(True, 10, 60, 20, 0.001, 1)])
    assert json.loads(json.dumps(got)) == got
    assert got[0]["progs"][0] == {"name": "trace_sockops", "kind": "sock_ops", "runs": 20,
                                  "ns": 60}
    assert got[0]["tracing"] is True and got[0]["syscalls"]["getsockopt"] == 1
