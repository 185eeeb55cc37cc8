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


def limits(rep: dict[str, Any]) -> list[str]:
    out: list[str] = []
    ing = rep.get("ingestion") or {}
    full, floor = _run(rep, "full"), _run(rep, "callback")
    steps = {s["step"]: s["us_per_event"] for s in ing.get("steps", [])}
    if full:
        per_cpu = full["consumed_per_consumer_cpu_s"]
        text = (f"Python work per event. The agent's consumer needs {_us(per_cpu):.1f} µs of CPU "
                f"per event ({per_cpu:,} events per CPU-second); the target leaves "
                f"{_us(TARGET_EVENTS_PER_S):.1f} µs.")
        if steps:
            text += (" Timed alone: " + ", ".join(f"{k} {v:.1f} µs" for k, v in steps.items())
                     + ". Decoding builds an `ipaddress.IPv4Address` and its string for every "
                     "address (`from_be32` then `str`), resolves the drop reason and source "
                     "file, and constructs a frozen `Flow` with `IP`, `TCP`, `TCPFlags` and "
                     "`TulleInfo` per event; enrichment looks up both endpoints and builds a "
                     "second `Flow`.")
        out.append(text)
    nometrics, noenrich = _run(rep, "no-metrics"), _run(rep, "no-enrich")
    decode_ring = _run(rep, "decode-ring")
    if full and nometrics and noenrich:
        out.append(
            "Where the time goes, per consumer CPU-second: full chain "
            f"{full['consumed_per_consumer_cpu_s']:,}, metrics off "
            f"{nometrics['consumed_per_consumer_cpu_s']:,}, enrichment off "
            f"{noenrich['consumed_per_consumer_cpu_s']:,}"
            + (f", both off {decode_ring['consumed_per_consumer_cpu_s']:,}" if decode_ring
               else "")
            + ".")
        whole = steps.get("whole _on_event")
        if whole:
            parts = {k: v for k, v in steps.items() if k != "whole _on_event"}
            out[-1] += (" Timed alone, the steps' shares of a whole `_on_event`: " + ", ".join(
                f"{k} {100 * v / whole:.0f}%" for k, v in parts.items()) + ".")
        out[-1] += (" Run-to-run noise on this shared machine is large (tens of %), so only "
                    "the big differences carry.")
    if floor:
        out.append(
            "The floor before any work: an empty Python callback takes "
            f"{floor['consumed_per_consumer_cpu_s']:,} events per CPU-second "
            f"({_us(floor['consumed_per_consumer_cpu_s']):.2f} µs each): BCC calls back into "
            "Python through ctypes once per record (GIL, argument conversion, a frame), and "
            f"at wall clock here it managed {floor['consumed_per_s']:,}/s.")
    shares = ing.get("idle_share") or {}
    if full and shares:
        out.append(
            "The machine is shared: a busy loop got "
            + ", ".join(f"{100 * v:.0f}% of {k}" for k, v in shares.items())
            + f" before the runs, and the consumer got {100 * full['consumer_core_share']:.0f}% "
            "of its core during the full-chain run (it was runnable the rest of the time, "
            f"waiting {full['consumer_runqueue_wait_s']:.1f} s of {_wall(full):.1f} s for "
            "the CPU). Wall-clock rates are therefore a fraction of what one core does; the "
            "per-CPU-second column is the one-core capacity.")
    if full:
        produced_rate = full["produced"] / full["seconds"] if full["seconds"] else 0
        paced = _run(rep, "paced")
        text = (f"Loss: the flat-out producer (BPF_PROG_TEST_RUN in the kernel) offers "
                f"{produced_rate:,.0f} events/s; the 1 MiB ring (about 10,000 records of 104 "
                "bytes with their headers) fills within milliseconds and the rest is counted "
                "in `events_lost_v1`. Every run balanced exactly: produced = consumed + lost, "
                "and the agent recorded the same loss as lost-event records.")
        if paced:
            text += (f" Offered a steady {paced['offered_rate']:,.0f}/s, the consumer still "
                     f"lost {paced['loss_pct']:.1f}%.")
        out.append(text)
    over = rep.get("overhead")
    if over and over.get("runs"):
        on = [r for r in over["runs"] if r["flow_events"] == "on"]
        off = [r for r in over["runs"] if r["flow_events"] == "off"]
        seen = [r["flows_seen"] / r["seconds"] for r in on if r.get("flows_seen")]
        per_conn = [r["flows_seen"] / r["requests"] for r in on
                    if r.get("flows_seen") and r["requests"]]
        text = (f"Datapath overhead on {rep['machine']['nproc']} vCPUs: wrk (2 threads), nginx, "
                "the kernel's softirq work for both ends, and both nodes' agents share the same "
                "cores. With events on, the lab's processes used "
                f"{mean(r['lab_cores'] for r in on):.2f} cores on average, against "
                f"{mean(r['lab_cores'] for r in off):.2f} with events off")
        if seen:
            text += (f", storing about {mean(seen):,.0f} flows/s "
                     f"({mean(per_conn):.1f} per new connection, both nodes together)")
        wake_on = mean(r["lab_wakeups_per_s"] for r in on)
        wake_off = mean(r["lab_wakeups_per_s"] for r in off)
        text += (f", and their threads woke {wake_on:,.0f} times/s against {wake_off:,.0f}")
        if seen and wake_on > wake_off:
            text += (f", one extra wake-up per {mean(seen) / (wake_on - wake_off):.0f} flows: "
                     "the ring buffer notifies a consumer that has caught up on every submit, "
                     "and each wake-up is a context switch on the same two cores")
        text += (". That CPU and those switches are taken from "
                 "wrk and nginx, which is what the cost measured here is made of; the "
                 "in-kernel part (one `bpf_ringbuf_output` of 96 bytes per event) is small "
                 "against the cost of a TCP connection through two veths and a bridge.")
        lost = sum(r["events_lost"] for r in on)
        if lost:
            text += f" The datapath lost {lost:,} events during the on runs (ring full)."
        out.append(text)
        model = cost_model(rep)
        if model:
            ratio = model["measured_pct"] / model["predicted_pct"] if model["predicted_pct"] else 0
            text = (
                f"The agents' CPU alone accounts for about {model['predicted_pct']:.0f}%: each "
                f"new connection gave {model['flows_per_conn']:.1f} flow events (both nodes), "
                f"each costing an agent about {model['agent_us']:.1f} µs of CPU (the ingestion "
                f"figure), so {model['agent_us_per_conn']:.0f} µs per connection, against "
                f"about {model['cpu_us_per_conn']:.0f} µs of CPU per connection in the off runs "
                f"({model['nproc']} vCPUs ÷ {model['off_rps']:,.0f} conn/s, median; an upper "
                "bound, since other processes took part of those vCPUs).")
            if ratio > 1.5:
                text += (f" The measured {model['measured_pct']:.0f}% is {ratio:.1f}× that: "
                         "the rest is most likely contention the model leaves out: the "
                         "agents' wake-ups preempting wrk and nginx, and two more runnable "
                         "processes sharing the cores with them and with the other sessions' "
                         "load.")
            else:
                text += f" The measured {model['measured_pct']:.0f}% is in line with it."
            if model.get("event_ns") is not None:
                text += (f" In the kernel an event costs about {model['event_ns']} ns (test-run, "
                         f"on vs off), {model['kernel_pct']:.2f}% of a connection's CPU.")
            out.append(text)
        loads = [r["load1"] for r in over["runs"]]
        out.append(f"Noise: 1-minute load average {min(loads):.1f}–{max(loads):.1f} during the "
                   "wrk runs (other sessions' labs and tests on the same 2 vCPUs); the on/off "
                   "pairs alternate order so drift does not favour one side, and the median "
                   "of the pairs is the figure.")
    return out


def _profile_self(rep: dict[str, Any], name: str) -> float:
    prof = next((r for r in (rep.get("ingestion") or {}).get("runs", []) if r["profile_top"]),
                None)
    if prof is None:
        return 0.0
    return sum(f["self_pct"] for f in prof["profile_top"] if f["name"].startswith(name))


def closing(rep: dict[str, Any]) -> list[str]:
    out: list[str] = []
    full, floor = _run(rep, "full"), _run(rep, "callback")
    steps = {s["step"]: s["us_per_event"] for s in (rep.get("ingestion") or {}).get("steps", [])}
    if full and full["consumed_per_consumer_cpu_s"] < TARGET_EVENTS_PER_S:
        need = full["consumed_per_consumer_cpu_s"] and (
            TARGET_EVENTS_PER_S / full["consumed_per_consumer_cpu_s"])
        out.append(
            f"The consumer must get about {need:.1f}× cheaper per event. In order of what it "
            "would buy:")
        init = _profile_self(rep, "__create_fn__")
        evolve = _profile_self(rep, "_evolve") + _profile_self(rep, "replace (")
        out.append(
            "Build one `Flow` per event, cheaply. `EventDecoder.decode` constructs a frozen "
            "`Flow` (plus `IP`, `TCP`, `TulleInfo`) through the dataclass `__init__`"
            + (f" ({init:.0f}% of the profile's self time)" if init else "")
            + ", then `enrich` builds a second `Flow` and new `Endpoint`s "
            "(`_evolve`, `dataclasses.replace`"
            + (f", {evolve:.0f}%" if evolve else "") + "). Decoding straight into the "
            "enriched flow (endpoints looked up first, slots filled once as `_evolve` does) "
            "removes one of the two objects and the generated `__init__`; storing the raw "
            "96-byte record in the FlowRing and building `Flow` objects only when a reader "
            "(GetFlows, `tulle observe`) asks removes both from the write path, since readers "
            "look at a small share of what is written.")
        out.append(
            "Cache address → string in a dict: `from_be32` makes an `ipaddress.IPv4Address` "
            "and `str()` formats it, about 1 µs per address and two or three per event, where "
            "a dict hit on a node's few thousand pod addresses costs ~0.05 µs. Skip "
            "`TulleInfo` for events without counters (drops).")
        out.append(
            "Cache enrichment per (source, destination, port) for the current EndpointIndex "
            "generation (the index changes on store events, not per flow), reusing the "
            "`Endpoint` objects instead of `dataclasses.replace` per flow"
            + (f"; enrichment is {steps['enrich']:.1f} µs of the "
               f"{steps.get('whole _on_event', 0):.1f} µs" if "enrich" in steps else "") + ".")
        out.append(
            "Batch past that: 5 µs per event leaves little room for Python. BCC calls back "
            "once per record through ctypes"
            + (f" ({_us(floor['consumed_per_consumer_cpu_s']):.2f} µs before any work)"
               if floor else "")
            + "; walking the mapped ring in one call per poll, or a small native helper "
            "around libbpf's `ring_buffer__consume` that hands Python a batch decoded into "
            "tuples, takes the per-record interpreter work down to the store itself.")
        out.append(
            "Reduce events at the source, as Cilium's monitor aggregation does: rate-limit drop "
            "events per endpoint and reason in the kernel (a per-CPU token bucket; the rest "
            "counted in a map and reported as a summary), so a pod spoofing at line rate costs "
            "counters, not one event per packet. Past one core, shard: one ring and one "
            "consumer process per group of CPUs (the GIL keeps a Python process to one core), "
            "merged by the flow store.")
    over = rep.get("overhead")
    if over and over.get("median_cost_pct") is not None and \
            over["median_cost_pct"] > TARGET_COST_PCT:
        model = cost_model(rep)
        if model:
            out.append(
                f"Datapath overhead: at {model['flows_per_conn']:.1f} events per connection "
                f"and {model['cpu_us_per_conn']:.0f} µs of CPU per connection here, 5% "
                f"leaves the agent {model['budget_us_per_event']:.1f} µs per event: the same "
                "order as the ingestion target, so the cheaper consumer above closes both.")
        out.append(
            "Datapath overhead: wake the agent per batch, not per event. Submit with "
            "`BPF_RB_NO_WAKEUP` and force a wake-up only when `bpf_ringbuf_query(..., "
            "BPF_RB_AVAIL_DATA)` passes a threshold (say an eighth of the ring), and let the "
            "agent also drain on a short timer with `ring_buffer_consume()` (a "
            "`ring_buffer_poll` that times out consumes nothing): flows then arrive in "
            "batches within 100 ms, which `--follow`'s one-second promise allows. The "
            "cheaper consumer above lowers the CPU part. In a cluster, give the agent its "
            "own CPU budget (cgroup) and measure on a node with idle cores, where the "
            "in-kernel cost (one ring-buffer write per connection event) is what remains.")
    if not out:
        out.append("Both targets are met in this run; nothing to close.")
    return out
