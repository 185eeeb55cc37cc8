"""What `tulle trace connect|rtt|retrans|drops|request` print: one line or one JSON object
per event, and log2 histograms per workload pair. Pure (flows in, text out); the golden
tests use these.

Lines look like bcc's tools, with pods in place of PIDs::

    Dec  5 07:01:02.123 node1 trc/cli-1:43512 -> trc/srv-2:8080 client connect 63µs
    Dec  5 07:01:02.123 node1 shop/web-1:40000 -> shop/echo:8080 GET /x 200 total 12.3ms = \
        client 40µs + waypoint 210µs + connect 0 + upstream 60µs + backend 12ms (shop/orders)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent.flows.flow import TCP, UDP, Endpoint, Flow, RequestSplit, Service, TcpTrace
from agent.flows.printer import format_timestamp, hostnames
from agent.flows.reqsplit import FIELDS as SPLIT_FIELDS
from agent.flows.reqsplit import PARTS as SPLIT_PARTS
from agent.tracing.hist import Log2Histogram
from agent.tracing.records import format_duration

VERBS = ("connect", "rtt", "retrans", "drops", "request")
# The parts of a request's time as the text line and the histograms name them.
PART_NAMES = {"client_network_ns": "client", "proxy_ns": "waypoint",
              "upstream_connect_ns": "connect", "upstream_network_ns": "upstream",
              "backend_ns": "backend"}


def _tcp(flow: Flow) -> TcpTrace | None:
    return flow.tulle.tcp if flow.tulle is not None else None


def _split(flow: Flow) -> RequestSplit | None:
    return flow.tulle.request if flow.tulle is not None else None


SPLIT_OFF_NOTE = (
    "note: L7 requests without a time split are left out: the waypoint's request split "
    "is off (tulle waypoint --no-request-split, or tracing paused with SIGUSR1). Turn it "
    "on: run the waypoint with --request-split (the default), or send it SIGUSR2.")


def unsplit_request(flow: Flow) -> bool:
    """An L7 request the waypoint served without taking its time split (split off)."""
    http = flow.l7.http if flow.l7 is not None else None
    return http is not None and bool(http.method) and _split(flow) is None


def wanted(verb: str, flow: Flow) -> bool:
    """Whether `flow` is an event of `verb` (the server filters first; this makes sure)."""
    if verb == "request":
        return _split(flow) is not None
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


def _request_detail(flow: Flow, r: RequestSplit) -> str:
    http = flow.l7.http if flow.l7 is not None else None
    what = f"{http.method} {_path(http.url)} {http.code}" if http is not None else "request"
    if flow.drop_reason_desc:
        what += f" {flow.drop_reason_desc}"
    parts = " + ".join(f"{PART_NAMES[p]} {_duration(getattr(r, p))}" for p in SPLIT_PARTS)
    route = f" ({flow.tulle.route})" if flow.tulle is not None and flow.tulle.route else ""
    return f"{what} total {_duration(r.total_ns)} = {parts}{route}"


def _duration(ns: int) -> str:
    return format_duration(ns) if ns else "0"


def _path(url: str) -> str:
    """The request target of an absolute URL ("http://echo.shop:8080/x?y" -> "/x?y")."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def detail(verb: str, flow: Flow) -> str:
    if verb == "request":
        r = _split(flow)
        assert r is not None
        return _request_detail(flow, r)
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
    r = _split(flow)
    if verb == "request" and r is not None:
        out.update(_request_json(flow, r))
    return out


def _request_json(flow: Flow, r: RequestSplit) -> dict[str, Any]:
    """The request's pods are in ``source``/``destination``; here what it asked, where it
    was routed, how it ended, and the parts of its time (the field names are a contract)."""
    out: dict[str, Any] = {}
    if flow.source_service is not None:
        out["source_service"] = f"{flow.source_service.namespace}/{flow.source_service.name}"
    if flow.destination_service is not None:
        svc = flow.destination_service
        out["destination_service"] = f"{svc.namespace}/{svc.name}"
    http = flow.l7.http if flow.l7 is not None else None
    if http is not None:
        out.update(method=http.method, url=http.url, http_protocol=http.protocol,
                   status=http.code)
    t = flow.tulle
    out.update(route=t.route if t else "", rule=t.rule if t else "",
               backend=t.backend if t else "", verdict=str(flow.verdict))
    if flow.drop_reason_desc:
        out["drop_reason"] = flow.drop_reason_desc
    out["latency_ns"] = flow.l7.latency_ns if flow.l7 is not None else 0
    out.update({name: getattr(r, name) for name in SPLIT_FIELDS})
    return out


# -- histograms ------------------------------------------------------------------------------

UNITS = {"connect": "connect µs", "rtt": "srtt µs", "retrans": "retransmits", "drops": "",
         "request": "total µs"}


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
    if verb == "request":
        r = _split(flow)
        return r.total_ns // 1000 if r is not None else None
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
    if verb == "request":
        return request_histograms(flows)
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


def request_histograms(flows: Iterable[Flow]) -> list[str]:
    """Per workload pair: the total's log2 histogram, then each part's (parts that were
    zero for every request are left out), in µs."""
    hists: dict[str, dict[str, Log2Histogram]] = {}
    for f in flows:
        r = _split(f)
        if r is None:
            continue
        by_part = hists.setdefault(pair(f), {})
        for name in SPLIT_FIELDS:
            by_part.setdefault(name, Log2Histogram()).add(getattr(r, name) // 1000)
    out: list[str] = []
    for name in sorted(hists):
        by_part = hists[name]
        out.append(f"{name} ({by_part['total_ns'].total} requests)")
        for part in SPLIT_FIELDS:
            h = by_part[part]
            if part != "total_ns" and set(h.counts) == {0}:
                continue  # all under 2 µs: nothing to see
            out.extend(h.lines(f"{PART_NAMES.get(part, 'total')} µs"))
        out.append("")
    return out
