"""`python -m bench.observe` (`make bench-observe`): both parts, the report, the table.

1. Ingestion (`ingest`): a producer process on core 0 drives the datapath with
   BPF_PROG_TEST_RUN, one DROP flow event per run; this process, on core 1, runs the agent's
   own ring-buffer reader for a fixed time; consumed/s and loss, plus variants with metrics
   off and reading alone, the per-step costs, and a py-spy profile.
2. Datapath overhead (`overhead`): L4 new connections per second through a ClusterIP in the
   `benchobs` lab with flow events on vs off, interleaved.

Results go to bench/results/observe-<date>.{md,json}. About 5 minutes with the defaults.
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
from bench.observe import findings, report
from bench.observe.ingest import PIN_DIR, IngestBench, IngestError
from bench.observe.overhead import CFG_FLOW_EVENTS_OFF, LAB, OverheadBench, median_cost

RESULTS = Path(__file__).resolve().parents[1] / "results"
_t0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[bench-observe {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench-observe", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0,
                   help="producer run time of the headline ingestion runs (default 10)")
    p.add_argument("--diag-seconds", type=float, default=5.0,
                   help="run time of the variant and profiled runs (default 5)")
    p.add_argument("--paced-rate", type=float, default=200_000.0,
                   help="events/s offered in the paced run (default 200000)")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy run")
    p.add_argument("--pairs", type=int, default=5, help="on/off pairs of wrk runs (default 5)")
    p.add_argument("--wrk-seconds", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-ingest", action="store_true")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="measure nothing: rewrite the findings and the .md of a saved report")
    return p.parse_args(argv)


def render(path: Path) -> int:
    """Re-derive the targets, limits and closing notes of a saved report and rewrite its
    .json and .md (for wording changes; the measurements are kept as they are)."""
    rep = json.loads(path.read_text())
    rep["targets"] = report.target_rows(rep)
    rep["limits"] = findings.limits(rep)
    rep["closing"] = findings.closing(rep)
    md_path, json_path = report.write(rep, report.render_markdown(rep), path.parent, path.stem)
    print(f"rewrote {md_path} and {json_path}")
    return 0


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args.render)
    if os.geteuid() != 0:
        print("bench-observe: needs root (BPF programs, lab namespaces). "
              "Run: sudo make bench-observe", file=sys.stderr)
        return 2
    if not args.skip_overhead and (missing := machine.missing_tools()):
        print(f"bench-observe: missing tools; install the Debian packages {', '.join(missing)} "
              "(make setup does it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = datetime.now(UTC)
    progress("flow observability benchmark: ingestion "
             + ("skipped" if args.skip_ingest else f"({args.seconds:.0f} s headline runs)")
             + ", datapath overhead "
             + ("skipped" if args.skip_overhead
                else f"({args.pairs} on/off pairs × {args.wrk_seconds} s)"))
    facts = machine.facts("iptables-restore")
    busy = machine.busy_processes()
    if busy:
        progress("other busy processes on this machine: "
                 + "; ".join(f"{b['cmd'][:50]} ({b['cores']} cores)" for b in busy[:4]))
    ing = IngestBench(args.seconds, args.diag_seconds, args.paced_rate, progress,
                      profile=not args.no_profile)
    over = OverheadBench(args.wrk_seconds, args.pairs, progress, threads=args.threads,
                         connections=args.connections)
    failures: list[str] = []
    try:
        if not args.skip_ingest:
            try:
                ing.run()
            except (IngestError, OSError) as err:
                failures.append(f"ingestion: {err}")
                progress(f"FAILED ingestion: {err}")
        if not args.skip_overhead:
            progress(f"datapath overhead: lab {LAB}")
            try:
                over.run()
            except (BenchError, OSError) as err:
                failures.append(f"datapath overhead: {err}")
                progress(f"FAILED datapath overhead: {err}")
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        progress("interrupted: pins and lab were removed; no report written")
        return 130
    if not ing.runs and not over.runs:
        return 1
    rep = build(args, facts, busy, ing, over, started, failures)
    md = report.render_markdown(rep)
    partial = args.skip_ingest or args.skip_overhead or bool(failures)
    stem = f"observe-{started:%Y-%m-%d}" + ("-partial" if partial else "")
    md_path, json_path = report.write(rep, md, args.out_dir, stem)
    if ing.profile_raw:  # py-spy's collapsed stacks, for flamegraph.pl or speedscope
        (args.out_dir / f"{stem}-pyspy.txt").write_text(ing.profile_raw)
    print()
    if ing.runs:
        print(report.text_table(report.INGEST_HEADER, report.ingest_rows(rep["ingestion"]["runs"])))
        print()
    if over.runs:
        print(report.text_table(report.OVERHEAD_HEADER,
                                report.overhead_rows(rep["overhead"]["runs"])))
        print()
    if rep["targets"]:
        print(report.text_table(report.TARGET_HEADER, rep["targets"]).replace("**", ""))
        print()
    progress(f"report: {md_path} and {json_path}")
    return 1 if failures else 0


def build(args: argparse.Namespace, facts: dict[str, Any], busy: list[dict[str, Any]],
          ing: IngestBench, over: OverheadBench, started: datetime,
          failures: list[str]) -> dict[str, Any]:
    rep: dict[str, Any] = {
        "date": f"{started:%Y-%m-%d %H:%M} UTC",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {**facts, "loadavg_end": machine.loadavg()},
        "busy_processes_at_start": busy,
        "notes": [f"The run did not finish: {f}" for f in failures] + ing.notes + over.notes,
    }
    if ing.runs:
        rep["ingestion"] = {
            "method": (
                "Producer: a separate process pinned to core 0 runs the datapath's "
                "`tulle_from_pod` (loaded into the private pin dir "
                f"`{PIN_DIR}`, removed afterwards) with BPF_PROG_TEST_RUN and a large `repeat` "
                "on one packet: a TCP SYN leaving the endpoint at ifindex 1 (10.244.1.2) with "
                "a neighbour's source address (10.244.1.3), so every run is dropped as "
                "INVALID_SOURCE_IP and emits exactly one **DROP** flow event (the synthetic "
                "event type used here). Consumer: this process pinned to core 1 runs the "
                "agent's own `DatapathController.run_events` loop (`EventReader.run`): "
                "`MappedRingBuffer.read` of `flow_events_v1` through its memory map (epoll "
                "with the 100 ms drain interval when it is empty), then `drain` (resolve each "
                "record's endpoints through the per-address-pair cache, count it for the metrics, "
                "`FlowIngest.put_deferred` into a 65,535-slot FlowRing and FlowMetrics) and "
                "the lost-event report, with an EndpointIndex of 200 pods, 50 services and "
                "2 nodes in which both addresses are pods. consumed/s counts flows that reached "
                "the FlowRing between the producer's start and its end; lost is the per-CPU "
                "sum of `events_lost_v1` over the run; check is produced = consumed + lost. "
                f"Datapath compile and load took {ing.load_s:.1f} s (not in any figure)."),
            "idle_share": ing.idle_share,
            "emit": ing.emit,
            "steps": [s.to_json() for s in ing.steps],
            "runs": [r.to_json() for r in ing.runs],
        }
    if over.runs:
        ratios = over.ratios()
        rep["overhead"] = {
            "method": (
                f"Lab `{LAB}` (2 nodes, bench/l4's workload): nginx (1 worker) on node2, wrk "
                f"(-t{over.threads} -c{over.connections}, `Connection: close`, "
                f"{over.seconds} s per run) in a client pod on node1 against the target "
                f"Service's ClusterIP ({over.url}). Flow events are switched on both nodes "
                "through `tulle_config_v1` key TULLE_CFG_FLOW_EVENTS_OFF "
                f"(= {CFG_FLOW_EVENTS_OFF}, read from bpf/lib/common.h), written with libbpf "
                "on the pinned map. Pairs alternate order (on/off, off/on, ...); the cost is "
                "1 − the median of the pairs' on ÷ off ratios. \"lab procs\" is the CPU the "
                "lab's own processes (agents, controller, DNS, relay) used during the run and "
                "\"lab wake-ups/s\" their threads' voluntary context switches; \"flows seen\" is "
                "the relay's seen-flows delta (n/a when a node did not answer the relay)."),
            "runs": [r.to_json() for r in over.runs],
            "pair_ratios": [round(x, 4) for x in ratios],
            "median_cost_pct": (round(c, 2) if (c := median_cost(ratios)) is not None
                                else None),
        }
    rep["targets"] = report.target_rows(rep)
    rep["limits"] = findings.limits(rep)
    rep["closing"] = findings.closing(rep)
    return rep
