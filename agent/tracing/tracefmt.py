"""What `tulle trace connect|rtt|retrans|drops` print: one line or one JSON object per event,
and log2 histograms per workload pair. Pure (flows in, text out); the golden tests use these.

Lines look like bcc's tools, with pods in place of PIDs::

    Dec  5 07:01:02.123 node1 trc/cli-1:43512 -> trc/srv-2:8080 client connect 63µs
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.flows.flow import TCP, UDP, Endpoint, Flow, Service, TcpTrace
from agent.flows.printer import format_timestamp, hostnames
from agent.tracing.hist import Log2Histogram
from agent.tracing.records import format_duration

VERBS = ("connect", "rtt", "retrans", "drops")


def _tcp(flow: Flow) -> TcpTrace | None:
    return flow.tulle.tcp if flow.tulle is not None else None


def wanted(verb: str, flow: Flow) -> bool:
    """Whether `flow` is an event of `verb` (the server filters first; this makes sure)."""
    t = _tcp(flow)
    if verb == "connect":
        return t is not None
    if verb == "rtt":
        return t is not None and t.srtt_us is not None
    if verb == "retrans":
        return t is not None and t.retransmits > 0
    if verb == "drops":
        return flow.tulle is not None and flow.tulle.kernel_drop_reason > 0
    raise ValueError(f"unknown trace verb {verb!r}")


def _us(us: int) -> str:
    return format_duration(us * 1000)


def detail(verb: str, flow: Flow) -> str:
    t = _tcp(flow)
    if verb == "drops":
        where = flow.tulle.kernel_drop_location if flow.tulle else ""
        return f"{flow.drop_reason_desc}" + (f" at {where}" if where else "")
    assert t is not None
    if verb == "connect":
        if t.role == "client":
            if not t.established:
                return f"client connect failed ({t.last_state})"
            return f"client connect {format_duration(t.connect_latency_ns)}"
        return f"server handshake rtt {_us(t.handshake_rtt_us)}"
    if verb == "rtt":
        s = t.srtt_us
        assert s is not None
        return (f"{t.role} srtt min/mean/max {_us(s.min)}/{_us(s.mean)}/{_us(s.max)} "
                f"last {_us(s.last)} ({s.samples} samples)")
    return f"{t.role} retransmits {t.retransmits} in {format_duration(t.lifetime_ns)}"


def format_line(verb: str, flow: Flow, *, node_name: bool = True) -> str:
    src, dst = hostnames(flow)
    node = f" {flow.node_name}" if node_name and flow.node_name else ""
    return f"{format_timestamp(flow.time)}{node} {src} -> {dst} {detail(verb, flow)}"


def _side(ep: Endpoint | None) -> dict[str, Any]:
    if ep is None:
        return {}
    out: dict[str, Any] = {}
    if ep.namespace:
        out["namespace"] = ep.namespace
    if ep.pod_name:
        out["pod_name"] = ep.pod_name
    if ep.workloads:
        out["workload"] = {"kind": ep.workloads[0].kind, "name": ep.workloads[0].name}
    return out


def event_json(verb: str, flow: Flow) -> dict[str, Any]:
    """One flat object per event: pods, addresses, and the verb's measurements."""
    from agent.flows.codec import format_time

    out: dict[str, Any] = {"time": format_time(flow.time) if flow.time else None,
                           "node_name": flow.node_name, "event": verb,
                           "source": _side(flow.source), "destination": _side(flow.destination)}
    if flow.ip is not None:
        out["source_ip"], out["destination_ip"] = flow.ip.source, flow.ip.destination
    if isinstance(flow.l4, TCP | UDP):
        out["source_port"] = flow.l4.source_port
        out["destination_port"] = flow.l4.destination_port
        out["protocol"] = "TCP" if isinstance(flow.l4, TCP) else "UDP"
    t = _tcp(flow)
    if t is not None:
        out.update(role=t.role, established=t.established,
                   connect_latency_ns=t.connect_latency_ns,
                   handshake_rtt_us=t.handshake_rtt_us, retransmits=t.retransmits,
                   lifetime_ns=t.lifetime_ns)
        if t.srtt_us is not None:
            s = t.srtt_us
            out["srtt_us"] = {"min": s.min, "mean": s.mean, "max": s.max, "last": s.last,
                              "samples": s.samples}
        if t.last_state:
            out["last_state"] = t.last_state
    if flow.tulle is not None and flow.tulle.kernel_drop_reason:
        out.update(reason=flow.drop_reason_desc, reason_code=flow.tulle.kernel_drop_reason,
                   location=flow.tulle.kernel_drop_location)
    return out


# -- histograms ------------------------------------------------------------------------------

UNITS = {"connect": "connect µs", "rtt": "srtt µs", "retrans": "retransmits", "drops": ""}


def workload_name(ep: Endpoint | None, ip: str, service: Service | None = None) -> str:
    """"ns/workload" (a Deployment's name, not its pods'), else "ns/pod", else the Service
    the address is (a client's socket keeps the ClusterIP it connected to), else the address."""
    if ep is not None and ep.workloads:
        return f"{ep.namespace}/{ep.workloads[0].name}"
    if ep is not None and ep.pod_name:
        return f"{ep.namespace}/{ep.pod_name}"
    if service is not None:
        return f"{service.namespace}/{service.name}"
    return ip


def pair(flow: Flow) -> str:
    src_ip = flow.ip.source if flow.ip else ""
    dst_ip = flow.ip.destination if flow.ip else ""
    src = workload_name(flow.source, src_ip, flow.source_service)
    return f"{src} -> {workload_name(flow.destination, dst_ip, flow.destination_service)}"


def value(verb: str, flow: Flow) -> int | None:
    """The number a verb's histogram counts, or None when the event has none."""
    t = _tcp(flow)
    if t is None:
        return None
    if verb == "connect":
        return t.connect_latency_ns // 1000 if t.connect_latency_ns else None
    if verb == "rtt":
        return t.srtt_us.mean if t.srtt_us is not None else None
    if verb == "retrans":
        return t.retransmits
    return None


def histograms(verb: str, flows: Iterable[Flow]) -> list[str]:
    """Log2 histograms per workload pair; for drops, counts per pair and kernel reason."""
    if verb == "drops":
        counts: dict[tuple[str, str], int] = {}
        for f in flows:
            key = (pair(f), f.drop_reason_desc)
            counts[key] = counts.get(key, 0) + 1
        return [f"{n:>8}  {p}  {reason}" for (p, reason), n in sorted(counts.items())]
    hists: dict[str, Log2Histogram] = {}
    for f in flows:
        v = value(verb, f)
        if v is not None:
            hists.setdefault(pair(f), Log2Histogram()).add(v)
    out: list[str] = []
    for name in sorted(hists):
        h = hists[name]
        out.append(f"{name} ({h.total} connections)")
        out.extend(h.lines(UNITS[verb]))
        out.append("")
    return out
