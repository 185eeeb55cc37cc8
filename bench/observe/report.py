"""The report: tables on stdout and bench/results/observe-<date>.{md,json} (pure rendering)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.l4.report import markdown_table, text_table

TARGET_EVENTS_PER_S = 200_000
TARGET_COST_PCT = 5.0

__all__ = ["markdown_table", "text_table", "ingest_rows", "overhead_rows", "target_rows",
           "render_markdown", "write"]


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


INGEST_HEADER = ["run", "producer", "s", "produced", "consumed", "consumed/s",
                 "per consumer CPU-s", "core share", "lost", "loss %", "check"]


def ingest_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for r in runs:
        producer = f"paced {r['offered_rate']:,.0f}/s" if r["offered_rate"] else "flat out"
        check = "ok" if r["unaccounted"] == 0 else f"{r['unaccounted']:+,} unaccounted"
        rows.append([r["title"], producer, f"{r['seconds']:.1f}", _n(r["produced"]),
                     _n(r["consumed"]), _n(r["consumed_per_s"]),
                     _n(r["consumed_per_consumer_cpu_s"]),
                     f"{100 * r['consumer_core_share']:.0f}%", _n(r["lost"]),
                     f"{r['loss_pct']:.1f}", check])
    return rows


STEP_HEADER = ["step", "CPU µs/event", "events per CPU-s alone"]


def step_rows(steps: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [[s["step"], f"{s['us_per_event']:.2f}", _n(s["events_per_s"])] for s in steps]


OVERHEAD_HEADER = ["pair", "flow events", "new conn/s", "p99 ms", "errors", "lab procs (cores)",
                   "lab wake-ups/s", "flows seen", "flows/conn", "events lost", "load1"]


def overhead_rows(runs: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [[str(r["pair"] + 1), r["flow_events"], _n(r["rps"]), _n(r["p99_ms"], 2),
             str(r["errors"]), f"{r['lab_cores']:.2f}", _n(r["lab_wakeups_per_s"]),
             _n(r["flows_seen"]) if r["flows_seen"] is not None else "n/a",
             _n(r["flows_per_connection"], 2), _n(r["events_lost"]), f"{r['load1']:.1f}"]
            for r in runs]


def target_rows(rep: dict[str, Any]) -> list[list[str]]:
    rows = []
    runs = (rep.get("ingestion") or {}).get("runs", [])
    full = next((r for r in runs if r["variant"] == "full"), None)
    if full is not None:
        wall, per_cpu = full["consumed_per_s"], full["consumed_per_consumer_cpu_s"]
        if per_cpu >= TARGET_EVENTS_PER_S and wall >= TARGET_EVENTS_PER_S:
            status = "**met**"
        elif per_cpu >= TARGET_EVENTS_PER_S:
            status = "**met per CPU-second; not at wall clock on this shared machine**"
        else:
            status = "**not met**"
        rows.append(["ingestion, agent consumer on one core (loss counted: "
                     f"{full['loss_pct']:.1f}% of a flat-out producer)",
                     f"{wall:,} /s wall; {per_cpu:,} per consumer CPU-second",
                     f"≥ {TARGET_EVENTS_PER_S:,} /s", status])
    over = rep.get("overhead")
    if over and over.get("median_cost_pct") is not None:
        cost = over["median_cost_pct"]
        ratios = ", ".join(f"{x:.3f}" for x in over["pair_ratios"])
        rows.append(["datapath overhead: cost of flow events on L4 new conn/s "
                     f"(median of on/off pairs: {ratios})", f"{cost:.1f}%",
                     f"≤ {TARGET_COST_PCT:.0f}%",
                     "**met**" if cost <= TARGET_COST_PCT else "**not met**"])
    return rows


TARGET_HEADER = ["target", "value", "goal", "status"]


def render_markdown(rep: dict[str, Any]) -> str:
    m = rep["machine"]
    out = [f"# Flow observability benchmark (`make bench-observe`), {rep['date']}", ""]
    out.append(f"Machine: {m['nproc']} vCPU ({m['cpu']}), kernel {m['kernel']}, "
               f"{m['memory_gib']} GiB. Load average {' / '.join(map(str, m['loadavg_start']))}"
               f" at start, {' / '.join(map(str, m.get('loadavg_end', ())))} at the end.")
    busy = rep.get("busy_processes_at_start") or []
    if busy:
        out.append("Other busy processes at start: "
                   + "; ".join(f"`{b['cmd'][:60]}` ({b['cores']} cores)" for b in busy[:6]) + ".")
    out.append("")
    if rep["targets"]:
        out += ["## Targets (issue 5)", "", markdown_table(TARGET_HEADER, rep["targets"]), ""]
    ing = rep.get("ingestion")
    if ing:
        out += ["## Ingestion: synthetic ring-buffer producer → the agent's consumer on one core",
                "", ing["method"], ""]
        if ing.get("idle_share"):
            out.append("A busy loop got " + ", ".join(
                f"{100 * v:.0f}% of {k}" for k, v in ing["idle_share"].items())
                + " just before the runs: the rest went to other processes on the machine. "
                "\"consumed/s\" is wall clock; \"per consumer CPU-s\" divides by the CPU time "
                "the consuming thread actually got (its rate had it owned the core); \"core "
                "share\" is that CPU time over the wall time.")
            out.append("")
        out += [markdown_table(INGEST_HEADER, ingest_rows(ing["runs"])), ""]
        emit = ing.get("emit") or {}
        if emit:
            out += [f"In the kernel, `tulle_from_pod` on this packet takes {emit['on_ns']} ns per "
                    f"run with its flow event and {emit['off_ns']} ns with flow events off "
                    f"(BPF_PROG_TEST_RUN's mean over {emit['repeat']:,} runs, median of "
                    f"{emit['rounds']} alternating rounds, the ring drained between rounds; "
                    f"{emit['lost']} lost): emitting an event costs about {emit['event_ns']} ns.",
                    ""]
        if ing.get("steps"):
            out += ["### Per-event CPU cost by step (in process, no ring: each step alone on "
                    "the recorded event, best of 3 × 20,000 on the consumer's core)", "",
                    markdown_table(STEP_HEADER, step_rows(ing["steps"])), ""]
        prof = next((r for r in ing["runs"] if r["profile_top"]), None)
        if prof:
            out += [f"### py-spy profile of the agent consumer ({prof['profile_samples']} "
                    "samples at 200 Hz; self = leaf frame, total = anywhere on the stack)", "",
                    markdown_table(["frame", "self %", "total %"],
                                   [[f"`{f['name']}`", f"{f['self_pct']:.1f}",
                                     f"{f['total_pct']:.1f}"] for f in prof["profile_top"]]), ""]
            steps = prof.get("profile_steps_pct") or {}
            if steps:
                out += ["Share of samples by step (inclusive): " + ", ".join(
                    f"{k} {v:.0f}%" for k, v in steps.items()) + ".", ""]
    over = rep.get("overhead")
    if over:
        out += ["## Datapath overhead: L4 new connections with flow events on vs off", "",
                over["method"], "", markdown_table(OVERHEAD_HEADER, overhead_rows(over["runs"])),
                ""]
    out += ["## What limits these numbers", ""] + [f"- {x}" for x in rep["limits"]] + [""]
    met = all("not met" not in row[-1] for row in rep["targets"])
    out += ["## What remains" if met else "## What would close the gap", ""]
    out += [f"- {x}" for x in rep["closing"]] + [""]
    if rep["notes"]:
        out += ["## Notes from the run", ""] + [f"- {x}" for x in rep["notes"]] + [""]
    return "\n".join(out)


def write(rep: dict[str, Any], md: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md_path.write_text(md)
    json_path.write_text(json.dumps(rep, indent=2) + "\n")
    return md_path, json_path
