"""`python -m bench.l4` (`make bench-l4`): argument parsing, the run, the report."""

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

from bench.l4 import machine, manifests, report
from bench.l4.findings import limits
from bench.l4.labs import BenchError
from bench.l4.results import CLUSTERIP, IPTABLES, NODEPORT, TULLE, Measurement, ratios
from bench.l4.runner import BenchConfig, Runner

RESULTS = Path(__file__).resolve().parents[1] / "results"
_t0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench-l4 {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None) -> tuple[BenchConfig, Path, int, Path | None, str]:
    p = argparse.ArgumentParser(prog="bench-l4", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 and 100 services, 3 s per run, one run each")
    p.add_argument("--counts", help="service counts, comma-separated (default 1,1000,10000)")
    p.add_argument("--seconds", type=int, help="seconds per wrk run (default 10)")
    p.add_argument("--repeats", type=int, help="runs per figure; the best is kept (default 2)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--labs", default="tulle,iptables",
                   help="which datapaths to run: tulle, iptables or both")
    p.add_argument("--paths", default=f"{CLUSTERIP},{NODEPORT}",
                   help="which Service paths to measure: clusterip (from a client pod, with "
                        "the pod IP direct rows), nodeport (node1's address : nodePort from "
                        "the lab's external client; every Service is then a NodePort one) "
                        "or both (default)")
    p.add_argument("--tag", default="",
                   help="added to the report's file name, e.g. busy-smoke")
    p.add_argument("--iptables", choices=["default", "nft", "legacy"], default="default",
                   help="iptables backend for the comparison lab (default: the system's)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="rewrite the Markdown report (findings, ratios) of a saved JSON result")
    p.add_argument("--wait-quiet", type=int, default=0, metavar="SECONDS",
                   help="on a shared machine, first wait up to SECONDS for other processes to "
                        "use under 0.2 cores (default: start at once)")
    args = p.parse_args(argv)
    counts: tuple[int, ...] = (1, 100) if args.quick else (1, 1_000, 10_000)
    if args.counts:
        try:
            counts = tuple(int(c) for c in args.counts.split(","))
        except ValueError:
            p.error(f"--counts takes numbers separated by commas, not {args.counts!r}")
    if min(counts) < 1:
        p.error("service counts start at 1 (the target itself)")
    labs = tuple(x.strip() for x in args.labs.split(",") if x.strip())
    if not labs or any(x not in (TULLE, IPTABLES) for x in labs):
        p.error("--labs takes tulle, iptables or tulle,iptables")
    paths = tuple(x.strip() for x in args.paths.split(",") if x.strip())
    if not paths or any(x not in (CLUSTERIP, NODEPORT) for x in paths):
        p.error("--paths takes clusterip, nodeport or clusterip,nodeport")
    if NODEPORT in paths and max(counts) > manifests.MAX_NODE_PORT_SERVICES:
        p.error(f"--paths nodeport: at most {manifests.MAX_NODE_PORT_SERVICES:,} Services (the "
                f"bench lab's node port range {manifests.node_port_range_flag()})")
    if args.tag and not all(c.isalnum() or c == "-" for c in args.tag):
        p.error("--tag takes letters, digits and dashes")
    restore = {"default": "iptables-restore", "nft": "iptables-nft-restore",
               "legacy": "iptables-legacy-restore"}[args.iptables]
    cfg = BenchConfig(
        counts=tuple(sorted(set(counts))),
        seconds=args.seconds or (3 if args.quick else 10),
        repeats=args.repeats or (1 if args.quick else 2),
        threads=args.threads,
        connections=args.connections,
        warmup_seconds=1 if args.quick else 2,
        labs=labs,
        paths=tuple(x for x in (CLUSTERIP, NODEPORT) if x in paths),
        iptables_restore=restore,
        quick=args.quick,
        extra_runs=0 if args.quick else 2,
    )
    return cfg, args.out_dir, args.wait_quiet, args.render, args.tag


def wait_quiet_for(limit: int, cores: float = 0.2, sample: float = 5.0) -> None:
    """Wait (at most `limit` seconds) for three quiet samples in a row."""
    deadline, quiet = time.monotonic() + limit, 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = machine.busy_processes(sample, min_share=0.02)
        used = sum(float(b["cores"]) for b in busy)
        quiet = quiet + 1 if used < cores else 0
        if quiet == 0:
            progress(f"waiting for a quiet machine: others use {used:.2f} cores ("
                     + "; ".join(str(b["cmd"])[:40] for b in busy[:3]) + ")")
    if quiet < 3:
        progress(f"the machine did not go quiet within {limit}s; starting anyway")


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    cfg, out_dir, wait_quiet, render, tag = parse_args(argv)
    if render is not None:
        return rerender(render)
    if os.geteuid() != 0:
        print("bench-l4: needs root (it builds lab network namespaces). "
              "Run: sudo make bench-l4", file=sys.stderr)
        return 2
    missing = machine.missing_tools()
    if missing:
        print(f"bench-l4: missing tools; install the Debian packages {', '.join(missing)} "
              "(make setup does it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    if wait_quiet:
        try:
            wait_quiet_for(wait_quiet)
        except KeyboardInterrupt:
            return 130
    started = datetime.now(UTC)
    progress(f"L4 benchmark: counts {', '.join(f'{c:,}' for c in cfg.counts)}; labs "
             f"{', '.join(cfg.labs)}; paths {', '.join(cfg.paths)}; "
             f"{cfg.repeats} x {cfg.seconds} s per figure; "
             f"about {cfg.estimate_seconds() // 60 + 1} min (plus up to "
             f"{cfg.noise_budget / 60 if cfg.extra_runs else 0:.0f} min of re-runs if other "
             "work disturbs the runs)")
    facts = machine.facts(cfg.iptables_restore)
    busy = machine.busy_processes()
    if busy:
        progress("other busy processes on this machine: "
                 + "; ".join(f"{b['cmd'][:50]} ({b['cores']} cores)" for b in busy[:4]))
    runner = Runner(cfg, progress)
    failure: str | None = None
    try:
        runner.run()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the teardown finish
        progress("interrupted: the labs were torn down; no report written")
        return 130
    except BenchError as err:
        failure = str(err)
        progress(f"FAILED: {failure}")
    if not runner.measurements:
        return 1
    rep = build(cfg, facts, busy, runner, started, failure)
    rs = ratios(runner.measurements, list(cfg.counts))
    md = report.render_markdown(rep, runner.measurements, rs)
    rep["ratios"] = [r.to_json() for r in rs]
    stem = (f"l4-{started:%Y-%m-%d}" + ("-quick" if cfg.quick else "")
            + (f"-{tag}" if tag else ""))
    md_path, json_path = report.write(rep, md, out_dir, stem)
    print()
    print(report.text_table(report.HEADER, report.table_rows(runner.measurements)))
    print()
    print(report.text_table(["target", "value", "noise range", "goal", "status"],
                            report.target_rows(rs)).replace("**", ""))
    print()
    progress(f"report: {md_path} and {json_path}")
    return 1 if failure else 0


def rerender(path: Path) -> int:
    """Recompute ratios and findings of a saved run and rewrite its Markdown (and JSON)."""
    rep = json.loads(path.read_text())
    ms = [Measurement.from_json(m) for m in rep["measurements"]]
    rs = ratios(ms, list(rep["config"]["counts"]))
    rep["limits"] = limits(rep["machine"], rep.get("busy_processes_at_start") or [], ms,
                           rep["tulle_sync"])
    md = report.render_markdown(rep, ms, rs)
    rep["ratios"] = [r.to_json() for r in rs]
    md_path, json_path = report.write(rep, md, path.parent, path.stem)
    print(f"rewrote {md_path} and {json_path}")
    return 0


def build(cfg: BenchConfig, facts: dict[str, Any], busy: list[dict[str, Any]], runner: Runner,
          started: datetime, failure: str | None) -> dict[str, Any]:
    facts = {**facts, "loadavg_end": machine.loadavg()}
    notes = list(runner.notes)
    if failure:
        notes.insert(0, f"The run stopped early: {failure}")
    return {
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "config": {"counts": list(cfg.counts), "seconds": cfg.seconds, "repeats": cfg.repeats,
                   "threads": cfg.threads, "connections": cfg.connections,
                   "labs": list(cfg.labs), "paths": list(cfg.paths),
                   "node_port_range": manifests.node_port_range_flag() if cfg.nodeport
                   else None,
                   "iptables_restore": cfg.iptables_restore, "quick": cfg.quick},
        "machine": facts,
        "busy_processes_at_start": busy,
        "measurements": [m.to_json() for m in runner.measurements],
        "tulle_sync": runner.tulle_sync,
        "iptables_sync": runner.iptables_sync,
        "limits": limits(facts, busy, runner.measurements, runner.tulle_sync),
        "notes": notes,
    }
