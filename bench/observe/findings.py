"""What limits the numbers and what would close the gaps, stated from what the run saw (pure)."""

from __future__ import annotations

from statistics import mean
from typing import Any

from bench.observe.report import TARGET_COST_PCT, TARGET_EVENTS_PER_S


def _run(rep: dict[str, Any], key: str) -> dict[str, Any] | None:
    ing = rep.get("ingestion") or {}
    return next((r for r in ing.get("runs", []) if r["variant"] == key), None)


def _us(per_s: float) -> float:
    return 1e6 / per_s if per_s else 0.0


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
            f"waiting {full['consumer_runqueue_wait_s']:.1f} s of {full['window_s']:.1f} s for "
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
        text += (f", and their threads woke {mean(r['lab_wakeups_per_s'] for r in on):,.0f} "
                 f"times/s against {mean(r['lab_wakeups_per_s'] for r in off):,.0f}: at these "
                 "rates each agent's consumer is usually caught up, so the ring buffer's "
                 "adaptive notification wakes it for every few events (a context switch on "
                 "the same two cores each time). That CPU and those switches are taken from "
                 "wrk and nginx, which is what the cost measured here is made of; the "
                 "in-kernel part (one `bpf_ringbuf_output` of 96 bytes per event) is small "
                 "against the cost of a TCP connection through two veths and a bridge.")
        lost = sum(r["events_lost"] for r in on)
        if lost:
            text += f" The datapath lost {lost:,} events during the on runs (ring full)."
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
