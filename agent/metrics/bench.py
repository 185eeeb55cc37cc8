"""How many flows/s `FlowMetrics.observe` sustains on one core: ``python -m agent.metrics.bench``.

The flow mix is the agent's: mostly L3/L4 trace events (connection opens and closes), some
drops, and L7 responses, across a few dozen workloads. The same mix also runs through
prometheus_client's own labelled Counter and Histogram children (cached per label set, the
usual way to make them cheap), so the report shows the ratio of the two designs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from agent.flows.flow import (
    HTTP,
    IP,
    TCP,
    UDP,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    L7Type,
    Layer7,
    TCPFlags,
    TrafficDirection,
    Verdict,
    Workload,
)
from agent.flows.names import EVENT_DROP, EVENT_L7, EVENT_TRACE
from agent.metrics.flowmetrics import FlowMetrics, _flow_labels
from agent.servicemap.peers import workload_label


def flow_mix(n: int = 10_000, workloads: int = 40) -> list[Flow]:
    """`n` flows: 60% TCP opens/closes, 15% UDP, 10% drops, 15% HTTP responses."""
    eps = [Endpoint(identity=1000 + i, namespace=f"ns{i % 4}", pod_name=f"wl{i}-0",
                    workloads=(Workload(f"wl{i}", "Deployment"),)) for i in range(workloads)]
    out: list[Flow] = []
    for i in range(n):
        src, dst = eps[i % workloads], eps[(i * 7 + 3) % workloads]
        ip = IP(f"10.0.{i % 250}.1", f"10.0.{i % 251}.2")
        r = i % 20
        if r < 12:
            flags = TCPFlags.from_bits((0x02, 0x12, 0x11, 0x10)[i % 4])
            f = Flow(time=i, verdict=Verdict.FORWARDED, ip=ip, l4=TCP(40000 + r, 8080, flags),
                     source=src, destination=dst, type=FlowType.L3_L4,
                     event_type=EventType(EVENT_TRACE, (0, 5)[i % 2]),
                     traffic_direction=TrafficDirection.EGRESS)
        elif r < 15:
            f = Flow(time=i, verdict=Verdict.FORWARDED, ip=ip, l4=UDP(50000, 53),
                     source=src, destination=dst, type=FlowType.L3_L4,
                     event_type=EventType(EVENT_TRACE, 11))
        elif r < 17:
            f = Flow(time=i, verdict=Verdict.DROPPED, drop_reason=133,
                     drop_reason_desc="POLICY_DENIED", ip=ip,
                     l4=TCP(40000, 5432, TCPFlags(SYN=True)), source=src, destination=dst,
                     type=FlowType.L3_L4, event_type=EventType(EVENT_DROP, 133),
                     traffic_direction=TrafficDirection.INGRESS)
        else:
            code = (200, 200, 200, 404, 503)[i % 5]
            f = Flow(time=i, verdict=Verdict.FORWARDED, ip=ip, l4=TCP(8080, 40000),
                     source=dst, destination=src, type=FlowType.L7, is_reply=True,
                     l7=Layer7(L7Type.RESPONSE, 200_000 + (i % 97) * 50_000,
                               HTTP(code, ("GET", "POST")[i % 2], "/x", "HTTP/1.1")),
                     event_type=EventType(EVENT_L7, 0))
        out.append(f)
    return out


def children_baseline() -> Callable[[Flow], None]:
    """The same families through prometheus_client's labelled children, cached per label
    tuple: the design FlowMetrics is measured against."""
    reg = CollectorRegistry()
    flows = Counter("b_flows", "", ["type", "subtype", "verdict", "protocol"], registry=reg)
    drops = Counter("b_drop", "", ["reason", "protocol"], registry=reg)
    flags = Counter("b_flags", "", ["flag", "family"], registry=reg)
    http = Counter("b_http", "", ["method", "code", "src", "dst"], registry=reg)
    dur = Histogram("b_dur", "", ["method", "src", "dst"], registry=reg)
    cache: dict[object, object] = {}

    def child(metric: object, labels: tuple[object, ...]) -> object:
        key = (metric, labels)
        c = cache.get(key)
        if c is None:
            c = cache[key] = metric.labels(*[str(v) for v in labels])  # type: ignore[attr-defined]
        return c

    def observe(f: Flow) -> None:
        et = f.event_type
        l7 = f.l7
        l7kind = 0 if l7 is None else (1 if l7.http is None else 2)
        etype, esub = (et.type, et.sub_type) if et else (-1, f.trace_observation_point)
        child(flows, _flow_labels(etype, esub, f.verdict, f.l4.__class__, l7kind,
                                  f.type)).inc()  # type: ignore[attr-defined]
        if f.verdict == Verdict.DROPPED:
            child(drops, (f.drop_reason_desc, "TCP")).inc()  # type: ignore[attr-defined]
        elif isinstance(f.l4, TCP) and f.l4.flags.SYN:
            child(flags, ("SYN-ACK" if f.l4.flags.ACK else "SYN",  # type: ignore[attr-defined]
                          "IPv4")).inc()
        if l7 is not None and l7.http is not None and l7.type == L7Type.RESPONSE:
            s, d = workload_label(f.destination), workload_label(f.source)
            child(http, (l7.http.method, l7.http.code, s, d)).inc()  # type: ignore[attr-defined]
            child(dur, (l7.http.method, s, d)).observe(  # type: ignore[attr-defined]
                l7.latency_ns / 1e9)

    return observe


def rate(observe: Callable[[Flow], None], flows: Sequence[Flow], seconds: float) -> float:
    """Flows/s of `observe` over repeated passes of `flows` for about `seconds`."""
    for f in flows:  # warm caches
        observe(f)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for f in flows:
            observe(f)
        done += len(flows)
    return done / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = ap.parse_args(argv)
    flows = flow_mix()
    metrics = FlowMetrics()
    single = rate(metrics.observe, flows, args.seconds)

    def batched(f: Flow, batch: list[Flow] = []) -> None:  # noqa: B006 - reused buffer
        batch.append(f)
        if len(batch) == 256:
            metrics.observe_many(batch)
            batch.clear()

    many = rate(batched, flows, args.seconds)
    baseline = rate(children_baseline(), flows, args.seconds)
    result = {"observe_flows_per_s": round(single), "observe_many_flows_per_s": round(many),
              "prometheus_children_flows_per_s": round(baseline),
              "ratio_observe_vs_children": round(single / baseline, 2)}
    if args.json:
        print(json.dumps(result))
        return
    print(f"FlowMetrics.observe            {single:>12,.0f} flows/s (one core)")
    print(f"FlowMetrics.observe_many(256)  {many:>12,.0f} flows/s")
    print(f"prometheus_client children     {baseline:>12,.0f} flows/s")
    print(f"ratio observe / children       {single / baseline:>12.2f}x")


if __name__ == "__main__":
    main()
