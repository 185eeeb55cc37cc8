"""`python -m bench.trace` (`make bench-trace`): tracing on vs off, side by side in one run.

Three workloads in one lab, each as alternating on/off pairs of wrk runs: L4 new
connections/s and keep-alive requests/s through a ClusterIP, and requests/s through the
waypoint (a Service with an HTTPRoute). Per workload: the on/off ratio of every pair, their
median, and the target (tracing costs <= 2%). Beside it, node1's waypoint's CPU per request,
on ÷ off (its median): what the split costs the waypoint itself, which the other load of a
shared machine moves far less than req/s. On a busy machine, many short pairs of the one
workload near its target, pinned, narrow the figure most: ``--workloads waypoint --pairs 12
--seconds 3 --pin``. ``--attribute`` adds where the cost goes, per request: each BPF
program the agents hold, each lab process's CPU and the waypoint's system calls
(bench/trace/attribute.py). ``--control`` is the A/A control: tracing off in every run, the
same pairs and order, so its "cost" and interval are the machine's noise alone, what a real
run of as many pairs can resolve. Results: bench/results/trace-<date>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.l4 import machine
from bench.l4.labs import BenchError
from bench.l4.report import markdown_table, text_table
from bench.observe.report import write
from bench.trace.attribution import (
    PROCESS_HEADER,
    PROGRAM_HEADER,
    SYSCALL_HEADER,
    WAYPOINT_HEADER,
    process_rows,
    program_rows,
    samples_json,
    summarize,
    syscall_rows,
    waypoint_rows,
)
from bench.trace.overhead import LAB, WARM_UP, WARM_UPS, WORKLOADS, TraceBench, summary

RESULTS = Path(__file__).resolve().parents[1] / "results"
TARGET_COST_PCT = 2.0
_t0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench-trace {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench-trace", description=__doc__.splitlines()[0])
    # 12 pairs by default: their sign-test interval runs from the 3rd to the 10th ratio (6,
    # the fewest with one, give the whole range); a pair's noise here is ±4-5% on a quiet
    # machine (--control, bench/results/trace-2026-12-07-session23.md)
    p.add_argument("--pairs", type=int, default=12,
                   help="on/off pairs per workload (default 12; 6 at least for an interval)")
    p.add_argument("--seconds", type=int, default=3, help="seconds per wrk run (default 3)")
    p.add_argument("--quick", action="store_true", help="2 pairs of 3 s runs (a smoke run)")
    p.add_argument("--workloads", type=_workloads, default=tuple(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all); "
                        "more pairs of fewer workloads narrow a cost near the target")
    p.add_argument("--pin", action="store_true",
                   help="wrk on CPU 0 and node1's waypoint on CPU 1 (taskset): the load "
                        "generator never takes the measured waypoint's core")
    p.add_argument("--attribute", action="store_true",
                   help="also attribute tracing's cost per request: every agent BPF program's "
                        "calls and ns (kernel run-time stats, on only for the run), node1's "
                        "waypoint's user/system CPU and its system calls (counted in the "
                        "kernel); the readings add cost, so such a run's on/off figures are "
                        "not the cost")
    p.add_argument("--control", action="store_true",
                   help="an A/A control: tracing off in every run, both runs of a pair "
                        "alike; the 'cost' and its interval are then this machine's noise "
                        "for as many pairs: what a real run's figures can resolve (it never "
                        "switches, so the switch's own effect is not in it)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="measure nothing: rewrite the .md of a saved report (e.g. after "
                        "writing its findings)")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.seconds = 2, 3
    return args


def _workloads(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(WORKLOADS)}")
    return names


def target_rows(workloads: dict[str, Any], control: bool = False) -> list[list[str]]:
    """One row per workload; a control (A/A) run meets or misses nothing: its figures are
    noise."""
    rows = []
    for name, w in workloads.items():
        cost = w["median_cost_pct"]
        if control:
            met = "control: noise only"
        else:
            met = ("n/a" if cost is None
                   else "**met**" if cost <= TARGET_COST_PCT else "**missed**")
        rows.append([w["what"], ", ".join(f"{r:.3f}" for r in w["pair_ratios"]),
                     "n/a" if w["median_ratio"] is None else f"{w['median_ratio']:.3f}",
                     "n/a" if cost is None else f"{cost:+.1f}%",
                     _interval(w),
                     _cpu_cost(w.get("median_cpu_cost_pct")), f"<= {TARGET_COST_PCT:.0f}%",
                     met])
        del name
    return rows


def _interval(workload: dict[str, Any]) -> str:
    if "cost_interval_pct" not in workload:  # a report from before the interval
        return "n/a"
    pct = workload["cost_interval_pct"]
    return "too few pairs" if pct is None else f"{pct[0]:+.1f}% to {pct[1]:+.1f}%"


def _cpu_cost(pct: float | None) -> str:
    return "n/a" if pct is None else f"{pct:+.1f}%"


TARGET_HEADER = ["workload", "on/off per pair", "median on/off", "cost",
                 "cost, 95% interval", "waypoint CPU/request", "target", ""]
RUN_HEADER = ["workload", "pair", "tracing", "req/s", "p99 ms", "errors", "lab cores", "load",
              "waypoint µs/req"]


def run_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["workload"], "warm-up" if r["pair"] == WARM_UP else str(r["pair"] + 1),
             r["tracing"], f"{r['rps']:,.0f}",
             f"{r['p99_ms']:.2f}", str(r.get("errors", 0)), f"{r['lab_cores']:.2f}",
             f"{r['load1']:.1f}",
             "n/a" if r.get("waypoint_us_per_request") is None
             else f"{r['waypoint_us_per_request']:.1f}"] for r in runs]


def render_markdown(rep: dict[str, Any]) -> str:
    title = ("Kernel tracing cost, A/A control (tracing off in every run)"
             if rep.get("control") else "Kernel tracing cost")
    lines = [f"# {title} — {rep['date']}", "", rep["method"], "",
             "## Result", "", markdown_table(TARGET_HEADER, rep["targets"]), ""]
    if rep.get("attribution"):
        lines += attribution_markdown(rep["attribution"])
    if rep.get("findings"):
        lines += ["## Findings", "", rep["findings"], ""]
    if rep["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in rep["notes"]], ""]
    lines += ["## Runs", "", markdown_table(RUN_HEADER, run_rows(rep["runs"])), "",
              f"Machine: {rep['machine']}", "", f"Command: `{rep['command']}`", ""]
    return "\n".join(lines)


def attribution_markdown(att: dict[str, Any]) -> list[str]:
    return ["## Attribution (--attribute)", "",
            f"Measured runs only (warm-ups left out): {att['requests']['on']:,} requests "
            f"with tracing on, {att['requests']['off']:,} off. Per request: each BPF program "
            "the agents hold (kernel run-time stats, the agents' copies summed; ns/call "
            "includes the stats' own clock reads), node1's waypoint's CPU and its system "
            "calls (counted in the kernel). The readings cost too, so this run's on/off cost above "
            "overstates tracing's.", "",
            markdown_table(PROGRAM_HEADER, program_rows(att)), "",
            markdown_table(WAYPOINT_HEADER, waypoint_rows(att)), "",
            markdown_table(PROCESS_HEADER, process_rows(att)), "",
            markdown_table(SYSCALL_HEADER, syscall_rows(att)), ""]


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        rep = json.loads(args.render.read_text())
        md_path, _ = write(rep, render_markdown(rep), args.render.parent, args.render.stem)
        print(f"rewrote {md_path}")
        return 0
    if os.geteuid() != 0:
        print("bench-trace: needs root (lab namespaces, BPF). Run: sudo make bench-trace",
              file=sys.stderr)
        return 2
    if missing := machine.missing_tools():
        print(f"bench-trace: missing tools: {', '.join(missing)} (make setup)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    started = datetime.now(UTC)
    progress(f"kernel tracing cost: lab {LAB}, {len(args.workloads)} workloads × {args.pairs} "
             f"on/off pairs × {args.seconds} s")
    bench = TraceBench(args.seconds, args.pairs, progress, threads=args.threads,
                       connections=args.connections, workloads=args.workloads, pin=args.pin,
                       attribute=args.attribute, control=args.control)
    failure = None
    try:
        bench.run()
    except (BenchError, OSError) as err:
        failure = str(err)
        progress(f"FAILED: {err}")
    except KeyboardInterrupt:
        progress("interrupted: the lab was removed; no report written")
        return 130
    if not bench.runs:
        return 1
    rep = build(args, bench, started, failure)
    stem = f"trace-{started:%Y-%m-%d}" + ("-quick" if args.quick else "") + (
        "-attribute" if args.attribute else "") + ("-control" if args.control else "") + (
        "-partial" if failure else "")
    md_path, json_path = write(rep, render_markdown(rep), args.out_dir, stem)
    print()
    print(text_table(TARGET_HEADER, rep["targets"]).replace("**", ""))
    progress(f"report: {md_path} and {json_path}")
    return 1 if failure else 0


def build(args: argparse.Namespace, bench: TraceBench, started: datetime,
          failure: str | None) -> dict[str, Any]:
    workloads = {name: {"what": what, "url": url, "connection_close": close,
                        **summary(bench.runs, name)}
                 for name, (what, url, close) in WORKLOADS.items() if name in bench.workloads}
    chosen = ("" if tuple(bench.workloads) == tuple(WORKLOADS)
              else f" --workloads {','.join(bench.workloads)}")
    return {
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "command": "make bench-trace" + (" ARGS=--quick" if args.quick else
                                         f" ARGS='--pairs {args.pairs} --seconds {args.seconds}"
                                         f"{chosen}{' --pin' if args.pin else ''}"
                                         f"{' --attribute' if args.attribute else ''}"
                                         f"{' --control' if args.control else ''}'"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"loadavg_end": machine.loadavg(), "cpus": os.cpu_count()},
        "method": (
            f"Lab `{LAB}` (2 nodes, bench/l4's workload): nginx on node2, wrk -t{bench.threads} "
            f"-c{bench.connections} for {bench.seconds} s per run in a client pod on node1. "
            "Workloads: (1) `Connection: close` to the `target` ClusterIP (new connections/s), "
            "(2) keep-alive to the same ClusterIP, (3) keep-alive to the `routed` ClusterIP, "
            "whose HTTPRoute sends every request through node1's waypoint to `target`. "
            "Tracing is switched at run time on both agents and both waypoints (SIGUSR1 "
            "detaches the tracer's tracepoints and turns the waypoint's per-request time "
            "split off, SIGUSR2 turns both on; each switch confirmed in every process's log), "
            "so the lab, its pods and the datapath stay the same between on and off. Pairs "
            "alternate order (on/off, off/on, ...); the cost is 1 − the median of the pairs' "
            "on ÷ off ratios (negative: on was faster, i.e. noise); its 95% interval is "
            "the sign test's, from the pairs' order statistics, which assumes nothing of "
            "the noise's shape (6 pairs at least; 20 give the 6th to 15th). Each workload "
            "starts "
            f"with {WARM_UPS} discarded warm-up runs as long as the others (tracing on), "
            "listed as `warm-up` below and never in the cost: the first runs on a fresh "
            "lab are not yet steady (bench/trace/overhead.py). `waypoint CPU/request`: "
            "node1's waypoint "
            "process's CPU time per request wrk counted, the median of the pairs' on ÷ off "
            "(the split's cost to the waypoint, whatever else the machine runs; meaningful "
            "for the waypoint workload only)." + (
                " **A/A control (--control)**: tracing stayed off in every run; `off (A)` "
                "holds on's place in each pair's order and `off (B)` off's, so the cost and "
                "its interval are the machine's noise alone, for this many pairs."
                if bench.control else "")),
        "control": bench.control,
        "workloads": workloads,
        "targets": target_rows(workloads, bench.control),
        "runs": [r.to_json() for r in bench.runs],
        "notes": ([f"The run did not finish: {failure}"] if failure else []) + bench.notes,
        "findings": "",
        **({"attribution": summarize(bench.samples),
            "attribution_samples": samples_json(bench.samples)} if bench.samples else {}),
    }
