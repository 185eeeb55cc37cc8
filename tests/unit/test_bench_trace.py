"""bench/trace's pure parts: per-workload pair ratios and the routed Service's manifests."""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.l4.labs import BenchError
from bench.l4.wrk import WrkResult
from bench.observe.overhead import cost_interval, median_interval
from bench.trace.cli import TARGET_HEADER, target_rows
from bench.trace.overhead import ROUTED_VIP, TraceRun, routed_objects, summary


def run(workload: str, pair: int, on: bool, rps: float) -> TraceRun:
    return TraceRun(workload, pair, on, WrkResult(rps, int(rps), 1.0, 1.0, 2.0), 0.5, 0.1)


def test_summary_pairs_on_with_off_per_workload() -> None:
    runs = [run("a", 0, True, 98), run("a", 0, False, 100),
            run("a", 1, False, 100), run("a", 1, True, 96),
            run("a", 2, True, 100), run("a", 2, False, 100),
            run("b", 0, True, 1), run("b", 0, False, 1000)]  # another workload: not mixed in
    s = summary(runs, "a")
    assert s["pair_ratios"] == [0.98, 0.96, 1.0]
    assert s["median_ratio"] == 0.98
    assert s["median_cost_pct"] == 2.0
    rows = target_rows({"a": {"what": "A", **s}, "b": {"what": "B", **summary(runs, "b")}})
    assert rows[0][-1] == "**met**" and rows[1][-1] == "**missed**"


def test_summary_without_a_complete_pair() -> None:
    assert summary([run("a", 0, True, 10)], "a")["median_cost_pct"] is None


def test_routed_service_sends_its_route_to_the_target() -> None:
    svc, route = routed_objects()
    assert svc["spec"]["clusterIP"] == ROUTED_VIP
    assert route["spec"]["parentRefs"][0]["name"] == svc["metadata"]["name"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "target"


def test_the_switch_signals_agents_and_waypoints_and_waits_for_each_to_log_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.trace import overhead

    names = ["agent-node1", "agent-node2", "waypoint-node1", "waypoint-node2"]
    pids = {name: 100 + i for i, name in enumerate(names)}
    for name in names:
        (tmp_path / f"{name}.log").write_text("")
    said = {"agent": ("kernel tracing paused", "kernel tracing resumed"),
            "waypoint": ("request split paused", "request split resumed")}
    signals: list[tuple[str, int]] = []

    def kill(pid: int, sig: int) -> None:  # each process logs its switch, as the real ones
        name = next(n for n, p in pids.items() if p == pid)
        signals.append((name, sig))
        if name != "waypoint-node2" or not stuck:
            line = said[name.split("-")[0]][sig == signal.SIGUSR2]
            with open(tmp_path / f"{name}.log", "a") as out:
                out.write(line + "\n")

    monkeypatch.setattr(overhead.os, "kill", kill)
    monkeypatch.setattr(overhead.LabPaths, "for_lab", lambda _name: SimpleNamespace(logs=tmp_path))
    lab = SimpleNamespace(process_pids=lambda: pids)
    bench = overhead.TraceBench(1, 1, lambda _m: None)
    stuck = False
    bench.switch(lab, False)  # type: ignore[arg-type]
    assert bench.tracing is False
    assert sorted(signals) == sorted((n, signal.SIGUSR1) for n in names)
    stuck = True  # one waypoint never confirms: the bench says which
    with pytest.raises(BenchError, match="waypoint-node2 did not log the switch"):
        bench.switch(lab, True, timeout=0.3)  # type: ignore[arg-type]
    assert bench.tracing is False


def test_each_workload_starts_with_warm_up_runs_that_never_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.trace import overhead
    from bench.trace.cli import run_rows

    measured: list[tuple[str, int, bool]] = []

    def measure(self: overhead.TraceBench, _lab: object, _runner: object, workload: str,
                pair: int, on: bool) -> TraceRun:
        measured.append((workload, pair, on))
        # the warm-up is far slower with tracing on: it must not move the cost
        return run(workload, pair, on, 10 if pair == overhead.WARM_UP else 100 - on)

    lab = SimpleNamespace(down=lambda: None)
    monkeypatch.setattr(overhead, "BenchLab", lambda *_a: lab)
    monkeypatch.setattr(overhead, "Runner", lambda *_a: SimpleNamespace(notes=[]))
    monkeypatch.setattr(overhead, "bring_up", lambda *_a: None)
    monkeypatch.setattr(overhead.TraceBench, "measure", measure)
    monkeypatch.setattr(overhead.shutil, "rmtree", lambda *_a, **_k: None)  # not a real lab's
    bench = overhead.TraceBench(5, 2, lambda _m: None)
    bench.run()
    for name in overhead.WORKLOADS:
        assert [(p, on) for w, p, on in measured if w == name] == [
            (overhead.WARM_UP, True), (overhead.WARM_UP, True),
            (0, True), (0, False), (1, False), (1, True)]
        assert summary(bench.runs, name)["pair_ratios"] == [0.99, 0.99]
    rows = run_rows([r.to_json() for r in bench.runs])
    assert [row[1] for row in rows[:6]] == ["warm-up", "warm-up", "1", "1", "2", "2"]


def test_a_control_run_keeps_tracing_off_in_both_runs_of_every_pair(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.trace import overhead
    from bench.trace.cli import run_rows

    switched: list[bool] = []
    monkeypatch.setattr(overhead.TraceBench, "switch",
                        lambda self, _lab, on, timeout=5.0: switched.append(on))
    monkeypatch.setattr(overhead.TraceBench, "wrk",
                        lambda self, *_a: WrkResult(100.0, 300, 3.0, 1.0, 2.0))
    lab = SimpleNamespace(lab_cpu=lambda: {})
    runner = SimpleNamespace(settle=lambda _lab: None)
    for control, wanted in ((False, [True, False]), (True, [False, False])):
        switched.clear()
        bench = overhead.TraceBench(3, 1, lambda _m: None, control=control)
        runs = [bench.measure(lab, runner, "l4_new_conn", 0, on)  # type: ignore[arg-type]
                for on in (True, False)]
        assert switched == wanted
        labels = [row[2] for row in run_rows([r.to_json() for r in runs])]
        assert labels == (["off (A)", "off (B)"] if control else ["on", "off"])
    s = summary(runs, "l4_new_conn")
    assert target_rows({"a": {"what": "A", **s}}, control=True)[0][-1] == "control: noise only"
    assert target_rows({"a": {"what": "A", **s}})[0][-1] == "**met**"


def test_agentcost_takes_the_per_flow_cost_from_two_run_lengths() -> None:
    from bench.trace.agentcost import BATCH, LONG, SHORT, callgrind_total, per_flow

    assert per_flow(1_000, 1_000 + 7 * (LONG - SHORT) * BATCH) == 7
    assert callgrind_total("events: Ir\nsummary: 123456\n") == 123456
    assert callgrind_total("totals: 42\n") == 42
    with pytest.raises(ValueError, match="no summary"):
        callgrind_total("events: Ir\n")


def test_agentcost_workload_runs_the_agents_path_with_the_split_on_and_off() -> None:
    from bench.trace.agentcost import workload

    workload(True, 1)  # what callgrind counts: a malformed batch would raise here
    workload(False, 1)


def test_l4cost_takes_the_per_connection_cost_from_two_run_lengths() -> None:
    from bench.trace.l4cost import BATCH, LONG, SHORT, per_connection

    assert per_connection(500, 500 + 9 * (LONG - SHORT) * BATCH) == 9


def test_l4cost_records_are_the_workloads_two_closes_per_connection() -> None:
    from agent.tracing.records import KIND_CLOSE, ROLE_CLIENT, ROLE_SERVER, KernelRecord
    from bench.trace.l4cost import CLIENT, SERVER, _layout, close_records

    layout = _layout()
    client, server = (KernelRecord.of(layout.from_buffer_copy(r))
                      for r in (close_records(layout, 1, 3)[2], close_records(layout, 2, 3)[2]))
    assert (client.kind, client.role, client.saddr, client.daddr, client.pod_ip) == (
        KIND_CLOSE, ROLE_CLIENT, CLIENT, SERVER, CLIENT)
    assert (server.role, server.saddr, server.pod_ip, server.sport) == (
        ROLE_SERVER, SERVER, SERVER, 80)
    assert client.established_ns - client.start_ns == 60_000 and client.srtt_samples == 3


@pytest.mark.parametrize("stage", ["read", "store", "full", "observed"])
def test_l4cost_workload_runs_each_stage(stage: str) -> None:
    from bench.trace.l4cost import workload

    workload(stage, 1)  # what callgrind counts: a malformed record would raise here


def test_a_subset_of_workloads_runs_only_those_and_says_so_in_the_command(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from bench.trace import overhead
    from bench.trace.cli import build, parse_args

    args = parse_args(["--workloads", "waypoint,l4_keepalive", "--pairs", "3"])
    assert args.workloads == ("waypoint", "l4_keepalive")
    with pytest.raises(SystemExit):
        parse_args(["--workloads", "waypoint,nope"])
    measured: list[str] = []

    def measure(self: overhead.TraceBench, _lab: object, _runner: object, workload: str,
                pair: int, on: bool) -> TraceRun:
        measured.append(workload)
        return run(workload, pair, on, 100)

    monkeypatch.setattr(overhead, "BenchLab", lambda *_a: SimpleNamespace(down=lambda: None))
    monkeypatch.setattr(overhead, "Runner", lambda *_a: SimpleNamespace(notes=[]))
    monkeypatch.setattr(overhead, "bring_up", lambda *_a: None)
    monkeypatch.setattr(overhead.TraceBench, "measure", measure)
    monkeypatch.setattr(overhead.shutil, "rmtree", lambda *_a, **_k: None)
    bench = overhead.TraceBench(5, 1, lambda _m: None, workloads=args.workloads)
    bench.run()
    assert set(measured) == {"waypoint", "l4_keepalive"}
    report = build(args, bench, datetime.now(UTC), None)
    assert list(report["workloads"]) == ["l4_keepalive", "waypoint"]
    assert "--workloads waypoint,l4_keepalive" in report["command"]


def test_the_median_interval_is_the_sign_tests_order_statistics() -> None:
    # Tables of the sign test's 95% interval for the median: 1st-6th of 6 (coverage 96.9%),
    # 2nd-9th of 10, 6th-15th of 20, 7th-18th of 24.
    for n, (lo, hi) in ((6, (1, 6)), (8, (1, 8)), (10, (2, 9)), (16, (4, 13)),
                        (20, (6, 15)), (24, (7, 18))):
        assert median_interval([float(x) for x in range(n, 0, -1)]) == (lo, hi)
    assert median_interval([1.0] * 5) is None  # 1 - 2/32 < 95%: no interval placed
    assert median_interval([1.0] * 5, confidence=0.9) == (1.0, 1.0)


def test_the_cost_interval_turns_ratios_into_a_cost_and_shows_in_the_table() -> None:
    ratios = [1.01, 0.97, 0.99, 0.98, 1.0, 0.96]  # on ÷ off: 0.96 is the highest cost
    low, high = cost_interval(ratios) or (0.0, 0.0)
    assert round(low, 6) == -1.0 and round(high, 6) == 4.0
    runs = [run("a", i, True, 100 * r) for i, r in enumerate(ratios)]
    runs += [run("a", i, False, 100) for i in range(len(ratios))]
    s = summary(runs, "a")
    assert s["cost_interval_pct"] == [-1.0, 4.0]
    row = target_rows({"a": {"what": "A", **s}})[0]
    assert row[TARGET_HEADER.index("cost, 95% interval")] == "-1.0% to +4.0%"
    assert summary(runs[:2] + runs[6:8], "a")["cost_interval_pct"] is None
