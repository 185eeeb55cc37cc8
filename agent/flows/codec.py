"""Flows to and from Hubble's JSON: the one translation between `Flow` and the outside.

`flow_to_json` produces what ``hubble observe -o json`` prints for the flow object:
protobuf JSON with the proto field names (``IP``, ``l4.TCP``, ``Type``, ``Summary``…), enum
names as strings, 64-bit integers as strings (``latency_ns``), and unset fields left out.
Tulle's extra data sits under ``tulle`` with plain numbers.

`agent.flows.fromjson` reads it back (`flow_from_json`, `lost_event_from_json`).
"""

from __future__ import annotations

import calendar
import re
import time as _time
from typing import Any

from agent.flows import reqsplit
from agent.flows.flow import (
    TCP,
    UDP,
    Endpoint,
    Flow,
    ICMPv4,
    ICMPv6,
    Layer7,
    LostEvent,
    Service,
    TulleInfo,
    TunnelInfo,
    summarize,
)
from agent.flows.names import (
    ENUM_ZERO,
)
from agent.flows.policyjson import policies_to_json
from agent.flows.tcpjson import tcp_to_json

JSON = dict[str, Any]

# The endpoints' SPIFFE IDs (Endpoint.spiffe_id), under "tulle": Hubble's endpoint has none.
SOURCE_SPIFFE_ID = "source_spiffe_id"
DESTINATION_SPIFFE_ID = "destination_spiffe_id"

# -- timestamps ------------------------------------------------------------------------------


def format_time(ns: int) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf JSON writes it."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs))
    if frac == 0:
        return base + "Z"
    if frac % 1_000_000 == 0:
        return f"{base}.{frac // 1_000_000:03d}Z"
    if frac % 1_000 == 0:
        return f"{base}.{frac // 1_000:06d}Z"
    return f"{base}.{frac:09d}Z"


_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d\d):(\d\d))$"
)


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an RFC 3339 timestamp (any offset, up to 9 digits)."""
    m = _RFC3339.match(text.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        secs -= offset if m.group(9) == "+" else -offset
    frac = (m.group(7) or "").ljust(9, "0")
    return secs * 1_000_000_000 + int(frac or 0)


# -- Flow -> JSON ----------------------------------------------------------------------------


def _endpoint(ep: Endpoint) -> JSON:
    out: JSON = {}
    if ep.id:
        out["ID"] = ep.id
    if ep.identity:
        out["identity"] = ep.identity
    if ep.namespace:
        out["namespace"] = ep.namespace
    if ep.labels:
        out["labels"] = list(ep.labels)
    if ep.pod_name:
        out["pod_name"] = ep.pod_name
    if ep.workloads:
        out["workloads"] = [{"name": w.name, "kind": w.kind} for w in ep.workloads]
    return out


def _service(svc: Service) -> JSON:
    out: JSON = {"name": svc.name}
    if svc.namespace:
        out["namespace"] = svc.namespace
    return out


def _l4(l4: object) -> JSON:
    if isinstance(l4, TCP):
        tcp: JSON = {}
        if l4.source_port:
            tcp["source_port"] = l4.source_port
        if l4.destination_port:
            tcp["destination_port"] = l4.destination_port
        tcp["flags"] = {name: True for name in l4.flags.names()}
        return {"TCP": tcp}
    if isinstance(l4, UDP):
        udp: JSON = {}
        if l4.source_port:
            udp["source_port"] = l4.source_port
        if l4.destination_port:
            udp["destination_port"] = l4.destination_port
        return {"UDP": udp}
    if isinstance(l4, ICMPv4 | ICMPv6):
        icmp: JSON = {}
        if l4.type:
            icmp["type"] = l4.type
        if l4.code:
            icmp["code"] = l4.code
        return {"ICMPv4" if isinstance(l4, ICMPv4) else "ICMPv6": icmp}
    return {}


def _l7(l7: Layer7) -> JSON:
    out: JSON = {}
    if l7.type not in ENUM_ZERO:
        out["type"] = str(l7.type)
    if l7.latency_ns:
        out["latency_ns"] = str(l7.latency_ns)  # uint64: a string in protobuf JSON
    if l7.http is not None:
        h = l7.http
        http: JSON = {}
        if h.code:
            http["code"] = h.code
        if h.method:
            http["method"] = h.method
        if h.url:
            http["url"] = h.url
        if h.protocol:
            http["protocol"] = h.protocol
        if h.headers:
            http["headers"] = [{"key": x.key, "value": x.value} for x in h.headers]
        out["http"] = http
    return out


# TulleInfo's JSON keys in its fields' order, each with its field: the split's parts print
# under "request" (by name, below), where the field was when it held a RequestSplit.
TULLE_KEYS = tuple(("request" if n == "request_parts" else n, n) for n in TulleInfo.__slots__)


def _tulle(t: TulleInfo) -> JSON:
    out = {key: getattr(t, name) for key, name in TULLE_KEYS if getattr(t, name)}
    if t.tcp is not None:
        out["tcp"] = tcp_to_json(t.tcp)
    if t.request is not None:
        out["request"] = reqsplit.to_json(t.request)
    if t.tunnel is not None:
        out["tunnel"] = {k: getattr(t.tunnel, k) for k in TunnelInfo.__slots__
                         if getattr(t.tunnel, k)}
    return out


def flow_to_json(flow: Flow) -> JSON:
    """The flow as Hubble's `-o json` prints it (field order as in Hubble's flow.proto)."""
    out: JSON = {}
    if flow.time:
        out["time"] = format_time(flow.time)
    if flow.uuid:
        out["uuid"] = flow.uuid
    if flow.verdict not in ENUM_ZERO:
        out["verdict"] = str(flow.verdict)
    if flow.drop_reason:
        out["drop_reason"] = flow.drop_reason
    if flow.ip is not None:
        ip: JSON = {"source": flow.ip.source}
        if flow.ip.source_xlated:
            ip["source_xlated"] = flow.ip.source_xlated
        ip["destination"] = flow.ip.destination
        if flow.ip.ip_version not in ENUM_ZERO:
            ip["ipVersion"] = str(flow.ip.ip_version)
        if flow.ip.encrypted:
            ip["encrypted"] = True
        out["IP"] = ip
    if flow.l4 is not None:
        out["l4"] = _l4(flow.l4)
    if flow.source is not None:
        out["source"] = _endpoint(flow.source)
    if flow.destination is not None:
        out["destination"] = _endpoint(flow.destination)
    if flow.type not in ENUM_ZERO:
        out["Type"] = str(flow.type)
    if flow.node_name:
        out["node_name"] = flow.node_name
    if flow.l7 is not None:
        out["l7"] = _l7(flow.l7)
    if flow.is_reply:
        out["reply"] = True  # deprecated in Hubble, still written for old scripts
    if flow.event_type is not None:
        ev: JSON = {}
        if flow.event_type.type:
            ev["type"] = flow.event_type.type
        if flow.event_type.sub_type:
            ev["sub_type"] = flow.event_type.sub_type
        out["event_type"] = ev
    if flow.source_service is not None:
        out["source_service"] = _service(flow.source_service)
    if flow.destination_service is not None:
        out["destination_service"] = _service(flow.destination_service)
    if flow.traffic_direction not in ENUM_ZERO:
        out["traffic_direction"] = str(flow.traffic_direction)
    if flow.policy_match_type:
        out["policy_match_type"] = flow.policy_match_type
    if flow.trace_observation_point not in ENUM_ZERO:
        out["trace_observation_point"] = flow.trace_observation_point
    if flow.drop_reason_desc not in ENUM_ZERO:
        out["drop_reason_desc"] = flow.drop_reason_desc
    if flow.is_reply is not None:
        out["is_reply"] = flow.is_reply
    if flow.tulle is not None and flow.tulle.drop_file:
        # Hubble's FileInfo: the datapath source file and line that dropped (also kept
        # under tulle.drop_file/drop_line for older readers)
        out["file"] = {"name": flow.tulle.drop_file, "line": flow.tulle.drop_line}
    out.update(policies_to_json(flow))
    tulle = _tulle(flow.tulle) if flow.tulle is not None else None
    for key, ep in ((SOURCE_SPIFFE_ID, flow.source), (DESTINATION_SPIFFE_ID, flow.destination)):
        if ep is not None and ep.spiffe_id:
            tulle = {**(tulle or {}), key: ep.spiffe_id}
    if tulle is not None:
        out["tulle"] = tulle
    out["Summary"] = summarize(flow)
    return out


def envelope(flow: Flow, node_name: str | None = None) -> JSON:
    """One `-o json` line: ``{"flow": {...}, "node_name": ..., "time": ...}``."""
    out: JSON = {"flow": flow_to_json(flow)}
    node = node_name if node_name is not None else flow.node_name
    if node:
        out["node_name"] = node
    if flow.time:
        out["time"] = format_time(flow.time)
    return out


def lost_event_to_json(ev: LostEvent) -> JSON:
    """A lost-events line, in the shape of Hubble's GetFlowsResponse.lost_events."""
    body: JSON = {"source": str(ev.source), "num_events_lost": str(ev.num_events_lost)}
    if ev.cpu is not None:
        body["cpu"] = ev.cpu
    out: JSON = {"lost_events": body}
    if ev.node_name:
        out["node_name"] = ev.node_name
    if ev.time:
        out["time"] = format_time(ev.time)
    return out
