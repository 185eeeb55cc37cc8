"""`python -m bench.mtls` (`make bench-mtls`): plaintext kernel L4, the plaintext waypoint and
the mTLS tunnel, side by side in one lab. Results: bench/results/mtls-<date>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench.l4 import machine
from bench.l4.labs import BenchError
from bench.l4.report import text_table
from bench.mtls.report import render_markdown, side_by_side, targets
from bench.mtls.runner import LAB, MODES, BenchConfig, Runner
from bench.observe.report import write

RESULTS = Path(__file__).resolve().parents[1] / "results"
_t0 = time.monotonic()
ENGINES = {"c": "bench/mtls/loadgen.c, driven by loadgen.py", "python": "Python threads"}


def progress(message: str) -> None:
    print(f"[bench-mtls {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def _modes(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in MODES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}"
        )
    if "mtls" in names and names[-1] != "mtls":
        raise argparse.ArgumentTypeError(
            "mtls must come last: enrolling the namespaces "
            "changes the plain Service's path for good"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench-mtls", description=__doc__.splitlines()[0])
    p.add_argument(
        "--modes",
        type=_modes,
        default=MODES,
        help=f"comma-separated, in order (default {','.join(MODES)})",
    )
    p.add_argument("--rate", type=float, default=1000.0, help="fixed rate, requests/s")
    p.add_argument("--connections", type=int, default=10, help="fixed-rate connections")
    p.add_argument("--warmup", type=float, default=3.0, help="fixed-rate warm-up, s")
    p.add_argument("--seconds", type=float, default=10.0, help="fixed-rate measured s (>= 10)")
    p.add_argument("--max-seconds", type=int, default=10, help="wrk run length, s")
    p.add_argument("--bulk-mib", type=int, default=512, help="bulk download size, MiB")
    p.add_argument(
        "--lab-up-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `tulle lab up` argument (repeatable), e.g. to start the CA",
    )
    p.add_argument(
        "--engine",
        choices=("c", "python"),
        default="c",
        help="fixed-rate client: bench/mtls/loadgen.c (default) or Python threads",
    )
    p.add_argument(
        "--profile-seconds",
        type=int,
        default=8,
        help="py-spy both waypoints in an extra fixed-rate run per waypoint mode (0: no profile)",
    )
    p.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="TEXT",
        help="a note for the report (repeatable), e.g. what else ran on the machine",
    )
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: 3 s fixed rate, 3 s wrk, 64 MiB bulk"
    )
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: rewrite the .md of a saved report",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.seconds, args.max_seconds, args.bulk_mib = 1.0, 3.0, 3, 64
    if args.rate <= 0 or args.connections < 1 or args.seconds <= 0 or args.bulk_mib < 1:
        p.error("--rate, --connections, --seconds and --bulk-mib must be positive")
    return args


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
        print(
            "bench-mtls: needs root (lab namespaces, BPF). Run: sudo make bench-mtls",
            file=sys.stderr,
        )
        return 2
    if missing := [t for t in machine.missing_tools() if "iptables" not in t]:
        print(f"bench-mtls: missing tools: {', '.join(missing)} (make setup)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    cfg = BenchConfig(
        rate=args.rate,
        connections=args.connections,
        warmup=args.warmup,
        seconds=args.seconds,
        max_seconds=args.max_seconds,
        bulk_mib=args.bulk_mib,
        modes=args.modes,
        bulk_runs=1 if args.quick else 3,
        lab_up_args=tuple(args.lab_up_arg),
        engine=args.engine,
        calibrate_seconds=2.0 if args.quick else 5.0,
        profile_seconds=min(args.profile_seconds, 3) if args.quick else args.profile_seconds,
    )
    started = datetime.now(UTC)
    facts = machine.facts("iptables-restore")
    progress(f"modes {', '.join(cfg.modes)} in lab {LAB}")
    runner = Runner(cfg, progress)
    failure = None
    try:
        runner.run()
    except (BenchError, OSError) as err:
        failure = str(err)
        progress(f"FAILED: {err}")
    except KeyboardInterrupt:
        progress("interrupted: the lab was removed; no report written")
        return 130
    if not runner.results:
        return 1
    facts["loadavg_end"] = machine.loadavg()
    rep = build(args, cfg, runner, started, facts, failure)
    stem = (
        f"mtls-{started:%Y-%m-%d}"
        + ("-quick" if args.quick else "")
        + ("-partial" if failure else "")
    )
    md_path, json_path = write(rep, render_markdown(rep), args.out_dir, stem)
    header, rows = side_by_side(rep["results"])
    print()
    print(text_table(header, rows).replace("**", ""))
    progress(f"report: {md_path} and {json_path}")
    return 1 if failure else 0


def method(cfg: BenchConfig) -> str:
    return (
        f"Lab `{LAB}` (2 nodes). nginx (1 worker) on node2 answers `/1k` with a 1,024-byte "
        "body; the client pod is on node1, in another namespace. Modes: `l4` = the `plain` "
        "ClusterIP (kernel only); `waypoint` = the `routed` ClusterIP, whose HTTPRoute sends "
        "every request through node1's waypoint (checked: nginx sees X-Forwarded-For); `mtls` "
        '= both namespaces labelled `tulle.io/mtls: "true"`, then the `plain` ClusterIP, '
        "measured only if both agents hold the pods' SVIDs and node2 holds a connection on "
        "port 15008 (else reported not available, with the reason). Per mode: (1) latency at "
        f"a fixed {cfg.rate:,.0f} requests/s: bench/mtls/loadgen.py, open loop over "
        f"{cfg.connections} keep-alive connections, each a thread on its own clock schedule "
        "(wrk2's model), latency from the intended send time (no coordinated omission); "
        f"{cfg.warmup:g} s warm-up, then {cfg.seconds:g} s measured; percentiles nearest-rank; "
        "\"added\" = the mode's percentile minus l4's. Client engine: "
        f"`{cfg.engine}` ({ENGINES[cfg.engine]}"
        ", 1 µs timer slack); it reports its own send lag (actual minus intended send), and "
        "both engines' floors are measured first against nginx over the backend pod's "
        "loopback (below). C is the default because it takes the interpreter out of the "
        "timed path: on this machine the Python engine added 30-40 µs at p50 over C against "
        "loopback nginx (bench/mtls/loadgen.py's docstring); at p99 both floors are the "
        "machine's thread wake-up latency; (2) maximum "
        f"requests/s: wrk -t{cfg.wrk_threads} -c{cfg.wrk_connections}, keep-alive, "
        f"{cfg.max_seconds} s after a 2 s warm-up; (3) waypoint CPU: utime+stime from "
        "/proc/<pid>/stat of both nodes' "
        "waypoints (PIDs from the lab's process records) over each run, divided by the "
        "requests completed (= vCPU per 1,000 requests/s); (4) bulk: curl downloads "
        f"{cfg.bulk_mib} MiB once per run ({cfg.bulk_runs} runs, median); (5) py-spy "
        "(raw, non-blocking, 200 Hz) on both waypoints during an extra fixed-rate run of "
        "each waypoint mode, never during a measured one. Others' cores = "
        "CPU used by processes outside the lab during the run (bench/l4/machine.OtherLoad)."
    )


BUSY_CORES = 0.3  # others' CPU during a measurement above which the run was not quiet


def busy_notes(results: list[dict[str, Any]], facts: dict[str, Any]) -> list[str]:
    """A note when processes outside the lab competed for the CPUs during the runs."""
    others = [
        run["machine"]["other_cores"]
        for r in results
        for run in (r.get("fixed"), r.get("max"))
        if run and "machine" in run
    ]
    if not others or max(others) < BUSY_CORES:
        return []
    return [
        f"Not a quiet machine: processes outside the lab used up to {max(others):.2f} of the "
        f"{facts.get('nproc')} CPUs during the measurements (load average "
        f"{facts.get('loadavg_start')} at the start): p99 latencies and max requests/s are "
        "bounded by CPU contention here; compare modes within this run only, and rerun on a "
        "quiet machine for absolute numbers."
    ]


def build(
    args: argparse.Namespace,
    cfg: BenchConfig,
    runner: Runner,
    started: datetime,
    facts: dict[str, Any],
    failure: str | None,
) -> dict[str, Any]:
    results = [r.to_json() for r in runner.results]
    notes = ([f"The run did not finish: {failure}"] if failure else []) + runner.notes
    notes += busy_notes(results, facts) + list(args.note)
    return {
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "command": "make bench-mtls" + (" ARGS=--quick" if args.quick else ""),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "machine": facts,
        "method": method(cfg),
        "results": results,
        "targets": targets(results),
        "client_floor": runner.calibration,
        "notes": notes,
    }
