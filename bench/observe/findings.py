"""What limits the numbers and what would close the gaps, stated from what the run saw (pure)."""

from __future__ import annotations

from statistics import mean, median
from typing import Any

from bench.observe.report import TARGET_COST_PCT, TARGET_EVENTS_PER_S


def _run(rep: dict[str, Any], key: str) -> dict[str, Any] | None:
    ing = rep.get("ingestion") or {}
    return next((r for r in ing.get("runs", []) if r["variant"] == key), None)


def _wall(run: dict[str, Any]) -> float:
    """The consumer's wall time: go -> drained."""
    if run.get("consumer_wall_s"):
        return float(run["consumer_wall_s"])
    share = run.get("consumer_core_share") or 0
    return float(run["consumer_cpu_s"]) / share if share else float(run["window_s"])


def _us(per_s: float) -> float:
    return 1e6 / per_s if per_s else 0.0


def cost_model(rep: dict[str, Any]) -> dict[str, Any]:
    """Predicted cost of flow events: flows per connection × the agent's CPU per event,
    over the CPU a connection gets with events off (empty when a figure is missing)."""
    over, full = rep.get("overhead") or {}, _run(rep, "full")
    runs = over.get("runs") or []
    per_conn = [r["flows_per_connection"] for r in runs
                if r["flow_events"] == "on" and r.get("flows_per_connection")]
    off = [r["rps"] for r in runs if r["flow_events"] == "off" and r["rps"] > 0]
    nproc = int(rep["machine"].get("nproc") or 0)
    if not (per_conn and off and full and full["consumed_per_consumer_cpu_s"] and nproc
            and over.get("median_cost_pct") is not None):
        return {}
    agent_us = _us(full["consumed_per_consumer_cpu_s"])
    flows = median(per_conn)
    off_rps = median(off)
    cpu_us = nproc * 1e6 / off_rps
    out: dict[str, Any] = {
        "flows_per_conn": round(flows, 2), "agent_us": round(agent_us, 2),
        "agent_us_per_conn": round(flows * agent_us, 1), "nproc": nproc,
        "off_rps": round(off_rps), "cpu_us_per_conn": round(cpu_us, 1),
        "predicted_pct": round(100 * flows * agent_us / cpu_us, 1),
        "measured_pct": over["median_cost_pct"],
        "budget_us_per_event": round(TARGET_COST_PCT / 100 * cpu_us / flows, 2),
    }
    emit = (rep.get("ingestion") or {}).get("emit") or {}
    if emit:
        out["event_ns"] = emit["event_ns"]
        out["kernel_pct"] = round(100 * flows * emit["event_ns"] / 1000 / cpu_us, 3)
    return out


def _step(steps: dict[str, float], prefix: str) -> float | None:
    return next((v for k, v in steps.items() if k.startswith(prefix)), None)


def limits(rep: dict[str, Any]) -> list[str]:
    out: list[str] = []
    ing = rep.get("ingestion") or {}
    full, floor, paced = _run(rep, "full"), _run(rep, "read-only"), _run(rep, "paced")
    steps = {s["step"]: s["us_per_event"] for s in ing.get("steps", [])}
    if full:
        per_cpu = full["consumed_per_consumer_cpu_s"]
        text = (f"The agent's reader needs {_us(per_cpu):.2f} µs of CPU per event "
                f"({per_cpu:,} events per CPU-second; the target leaves "
                f"{_us(TARGET_EVENTS_PER_S):.1f} µs).")
        if floor:
            text += (f" Reading the mapped ring alone (records out, counted, nothing stored) "
                     f"takes {_us(floor['consumed_per_consumer_cpu_s']):.2f} µs "
                     f"({floor['consumed_per_consumer_cpu_s']:,} per CPU-second): one copy "
                     "and one C-level unpack per batch, no Python call per record.")
        copy, drain = _step(steps, "read the mapped ring"), _step(steps, "resolve, count")
        if copy is not None and drain is not None:
            text += (f" Timed alone: reading a record {copy:.2f} µs; resolving its "
                     f"endpoints (a dict hit on its address bytes), counting it for the metrics "
                     f"(a dict hit on its kind bytes) and storing it {drain:.2f} µs. Nothing is "
                     "decoded on the way in.")
        out.append(text)
    built = _step(steps, "build the flow")
    if built is not None:
        out.append(
            f"The price moved to reading: building a flow from a stored record costs "
            f"{built:.1f} µs, paid once per record a reader actually reads (GetFlows, "
            "`tulle observe`, the relay), then kept. `--last 20` builds at most 20 flows plus "
            "those its filters reject; a client following every flow of a node at "
            f"N flows/s costs that node N × {built:.1f} µs, as Hubble's followers cost theirs.")
    if full:
        produced_rate = full["produced"] / full["seconds"] if full["seconds"] else 0
        text = (f"Loss: the flat-out producer (BPF_PROG_TEST_RUN in the kernel) offers "
                f"{produced_rate:,.0f} events/s, more than one Python core takes, so the 2 MiB "
                "ring fills and the rest is counted in `events_lost_v1`. Every run balanced "
                "exactly (produced = consumed + lost) and the agent recorded the same loss as "
                "lost-event records.")
        if paced:
            text += (f" Offered a steady {paced['offered_rate']:,.0f}/s, the reader lost "
                     f"{paced['loss_pct']:.1f}% using {100 * paced['consumer_core_share']:.0f}% "
                     "of its core.")
        out.append(text)
    shares = ing.get("idle_share") or {}
    if full and shares:
        out.append(
            "The machine is shared: a busy loop got "
            + ", ".join(f"{100 * v:.0f}% of {k}" for k, v in shares.items())
            + f" before the runs, and the reader got {100 * full['consumer_core_share']:.0f}% "
            "of its core in the flat-out run; the per-CPU-second column is the one-core "
            "capacity.")
    over = rep.get("overhead")
    if over and over.get("runs"):
        on = [r for r in over["runs"] if r["flow_events"] == "on"]
        off = [r for r in over["runs"] if r["flow_events"] == "off"]
        seen = [r["flows_seen"] / r["seconds"] for r in on if r.get("flows_seen")]
        per_conn = [r["flows_seen"] / r["requests"] for r in on
                    if r.get("flows_seen") and r["requests"]]
        text = (f"Datapath overhead on {rep['machine']['nproc']} vCPUs shared by wrk, nginx, the "
                "kernel's work for both ends and both nodes' agents. With events on, the lab's "
                f"processes used {mean(r['lab_cores'] for r in on):.2f} cores on average, "
                f"against {mean(r['lab_cores'] for r in off):.2f} with events off")
        if seen:
            text += (f", storing about {mean(seen):,.0f} flows/s "
                     f"({mean(per_conn):.1f} per new connection, both nodes together)")
        wake_on = mean(r["lab_wakeups_per_s"] for r in on)
        wake_off = mean(r["lab_wakeups_per_s"] for r in off)
        text += (f"; their threads woke {wake_on:,.0f} times/s against {wake_off:,.0f}: the "
                 "kernel wakes a reader once per 1,024 records (node-wide) and the reader "
                 "otherwise drains every 100 ms, so wake-ups no longer grow with the flow "
                 "rate.")
        lost = sum(r["events_lost"] for r in on)
        if lost:
            text += f" The datapath lost {lost:,} events during the on runs (ring full)."
        out.append(text)
        model = cost_model(rep)
        if model:
            text = (
                f"Cost model: {model['flows_per_conn']:.1f} events per connection × "
                f"{model['agent_us']:.2f} µs of agent CPU each = "
                f"{model['agent_us_per_conn']:.1f} µs per connection, against about "
                f"{model['cpu_us_per_conn']:.0f} µs of CPU per connection in the off runs "
                f"({model['nproc']} vCPUs ÷ {model['off_rps']:,.0f} conn/s): about "
                f"{model['predicted_pct']:.1f}% predicted, {model['measured_pct']:.1f}% "
                "measured.")
            if model.get("event_ns") is not None:
                text += (f" In the kernel an event costs about {model['event_ns']} ns (test-run, "
                         f"on vs off), {model['kernel_pct']:.2f}% of a connection's CPU.")
            out.append(text)
        loads = [r["load1"] for r in over["runs"]]
        out.append(f"Noise: 1-minute load average {min(loads):.1f}–{max(loads):.1f} during the "
                   "wrk runs; the on/off pairs alternate order so drift does not favour one "
                   "side, and the median of the pairs is the figure. Single pairs differ by "
                   "several per cent either way, so a cost within ±5% is indistinguishable "
                   "from none at this run length.")
    return out


def closing(rep: dict[str, Any]) -> list[str]:
    out: list[str] = []
    full = _run(rep, "full")
    if full and full["consumed_per_consumer_cpu_s"] < TARGET_EVENTS_PER_S:
        out.append(
            "Ingestion is below target: the remaining per-record Python work is two slices, "
            "two dict lookups and a tuple per record in `EventReader.drain`; a native helper "
            "that groups a batch by its who/what keys would take that out of Python.")
    over = rep.get("overhead")
    if over and over.get("median_cost_pct") is not None and \
            over["median_cost_pct"] > TARGET_COST_PCT:
        out.append(
            "Datapath overhead is above target. Look at where the lab processes' CPU goes "
            "with events on (py-spy on an agent during a run) and at the in-kernel share; "
            "emitting one event per connection per node instead of per hook halves the rest.")
    if not out:
        out.append(
            "Both targets are met in this run. What still scales with traffic: the reader is "
            "one Python thread (one core) per node; past that, shard one ring and one reader "
            "per group of CPUs. Drop events are still one per dropped packet: a pod flooding "
            "denied packets costs events, not counters; aggregate them in the kernel "
            "(per endpoint and reason, a token bucket, the rest counted) as Cilium's monitor "
            "aggregation does.")
    return out
