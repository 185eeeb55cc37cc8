"""Flows to and from Hubble's JSON: the one translation between `Flow` and the outside.

`flow_to_json` produces what ``hubble observe -o json`` prints for the flow object:
protobuf JSON with the proto field names (``IP``, ``l4.TCP``, ``Type``, ``Summary``…), enum
names as strings, 64-bit integers as strings (``latency_ns``), and unset fields left out.
Tulle's extra data sits under ``tulle`` with plain numbers.

`flow_from_json` reads that back, and tolerates Hubble's own output: a bare flow or the
``{"flow": …}`` envelope, enums as names or numbers, integers as strings or numbers, and
fields it does not know.
"""

from __future__ import annotations

import calendar
import dataclasses
import re
import time as _time
from typing import Any

from agent.flows import reqsplit
from agent.flows.flow import (
    HTTP,
    IP,
    TCP,
    UDP,
    Endpoint,
    EventType,
    Flow,
    HTTPHeader,
    ICMPv4,
    ICMPv6,
    Layer7,
    LostEvent,
    Service,
    TCPFlags,
    TulleInfo,
    TunnelInfo,
    Workload,
    summarize,
)
from agent.flows.names import (
    DIRECTION_NUMBERS,
    DROP_REASONS,
    ENUM_ZERO,
    FLOW_TYPE_NUMBERS,
    IP_VERSION_NUMBERS,
    L7_TYPE_NUMBERS,
    VERDICT_NUMBERS,
    FlowType,
    IPVersion,
    L7Type,
    LostEventSource,
    TrafficDirection,
    Verdict,
)
from agent.flows.policyjson import policies_from_json, policies_to_json
from agent.flows.tcpjson import tcp_from_json, tcp_to_json

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
_TULLE_KEYS = tuple(("request" if n == "request_parts" else n, n) for n in TulleInfo.__slots__)


def _tulle(t: TulleInfo) -> JSON:
    out = {key: getattr(t, name) for key, name in _TULLE_KEYS if getattr(t, name)}
    if t.tcp is not None:
        out["tcp"] = tcp_to_json(t.tcp)
    if t.request is not None:
        out["request"] = reqsplit.to_json(t.request)
    if t.tunnel is not None:
        out["tunnel"] = {k: getattr(t.tunnel, k) for k in TunnelInfo.__slots__
                         if getattr(t.tunnel, k)}
    return out


def _tunnel_from(d: Any) -> TunnelInfo | None:
    if not isinstance(d, dict):
        return None
    return TunnelInfo(**{k: str(d.get(k, "")) for k in TunnelInfo.__slots__})


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


# -- JSON -> Flow ----------------------------------------------------------------------------


def _int(value: Any) -> int:
    if value is None or value == "":
        return 0
    return int(value)


def _enum(value: Any, numbers: dict[Any, int], default: Any) -> Any:
    """An enum member from its name or its number."""
    if value is None or value == "":
        return default
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        by_number = {n: member for member, n in numbers.items()}
        return by_number.get(int(value), default)
    for member in numbers:
        if member == value:
            return member
    return default


def _endpoint_from(d: JSON | None) -> Endpoint | None:
    if d is None:
        return None
    return Endpoint(
        id=_int(d.get("ID")),
        identity=_int(d.get("identity")),
        namespace=d.get("namespace", ""),
        labels=tuple(d.get("labels") or ()),
        pod_name=d.get("pod_name", ""),
        workloads=tuple(
            Workload(name=w.get("name", ""), kind=w.get("kind", ""))
            for w in d.get("workloads") or ()
        ),
    )


def _with_spiffe_id(ep: Endpoint | None, spiffe_id: Any) -> Endpoint | None:
    if not spiffe_id:
        return ep
    if ep is None:
        return Endpoint(spiffe_id=str(spiffe_id))
    return dataclasses.replace(ep, spiffe_id=str(spiffe_id))


def _l4_from(d: JSON | None) -> TCP | UDP | ICMPv4 | ICMPv6 | None:
    if not d:
        return None
    if "TCP" in d:
        t = d["TCP"] or {}
        flags = t.get("flags") or {}
        return TCP(
            _int(t.get("source_port")),
            _int(t.get("destination_port")),
            TCPFlags.of(*(k for k, v in flags.items() if v)),
        )
    if "UDP" in d:
        u = d["UDP"] or {}
        return UDP(_int(u.get("source_port")), _int(u.get("destination_port")))
    for key, cls in (("ICMPv4", ICMPv4), ("ICMPv6", ICMPv6)):
        if key in d:
            i = d[key] or {}
            return cls(_int(i.get("type")), _int(i.get("code")))
    return None


def _l7_from(d: JSON | None) -> Layer7 | None:
    if d is None:
        return None
    h = d.get("http")
    http = None
    if h is not None:
        http = HTTP(
            code=_int(h.get("code")),
            method=h.get("method", ""),
            url=h.get("url", ""),
            protocol=h.get("protocol", ""),
            headers=tuple(
                HTTPHeader(x.get("key", ""), x.get("value", "")) for x in h.get("headers") or ()
            ),
        )
    return Layer7(
        type=_enum(d.get("type"), L7_TYPE_NUMBERS, L7Type.UNKNOWN_L7_TYPE),
        latency_ns=_int(d.get("latency_ns")),
        http=http,
    )


def _service_from(d: JSON | None) -> Service | None:
    if d is None:
        return None
    return Service(name=d.get("name", ""), namespace=d.get("namespace", ""))


def _time_from(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, dict):  # {"seconds": .., "nanos": ..}
        return _int(value.get("seconds")) * 1_000_000_000 + _int(value.get("nanos"))
    if isinstance(value, int | float):
        return int(value)
    return parse_time(str(value))


def flow_from_json(data: JSON) -> Flow:
    """A Flow from `flow_to_json` output, Hubble's flow JSON, or a ``{"flow": …}`` line."""
    if "flow" in data and isinstance(data["flow"], dict):
        outer = data
        data = data["flow"]
        if not data.get("node_name") and outer.get("node_name"):
            data = {**data, "node_name": outer["node_name"]}
        if not data.get("time") and outer.get("time"):
            data = {**data, "time": outer["time"]}
    ip = data.get("IP")
    ev = data.get("event_type")
    reply = data.get("is_reply")
    if reply is None and data.get("reply"):
        reply = True
    tulle = data.get("tulle")
    file = data.get("file")
    if isinstance(file, dict) and file.get("name") and not (tulle or {}).get("drop_file"):
        # Hubble's FileInfo, from a Hubble file or a line without the tulle copy
        tulle = {**(tulle or {}), "drop_file": str(file["name"]),
                 "drop_line": _int(file.get("line"))}
    known = {key for key, _name in _TULLE_KEYS}
    source = _endpoint_from(data.get("source"))
    destination = _endpoint_from(data.get("destination"))
    if tulle is not None:
        source = _with_spiffe_id(source, tulle.get(SOURCE_SPIFFE_ID))
        destination = _with_spiffe_id(destination, tulle.get(DESTINATION_SPIFFE_ID))
        if not set(tulle) - {SOURCE_SPIFFE_ID, DESTINATION_SPIFFE_ID}:
            tulle = None  # only the IDs: the flow had no TulleInfo
    drop_desc = data.get("drop_reason_desc", "")
    return Flow(
        time=_time_from(data.get("time")),
        uuid=data.get("uuid", ""),
        verdict=_enum(data.get("verdict"), VERDICT_NUMBERS, Verdict.VERDICT_UNKNOWN),
        drop_reason=_int(data.get("drop_reason")),
        drop_reason_desc=str(drop_desc) if not isinstance(drop_desc, int) else _drop(drop_desc),
        ip=None if ip is None else IP(
            source=ip.get("source", ""),
            destination=ip.get("destination", ""),
            ip_version=_enum(ip.get("ipVersion"), IP_VERSION_NUMBERS, IPVersion.IP_NOT_USED),
            encrypted=bool(ip.get("encrypted", False)),
            source_xlated=str(ip.get("source_xlated", "")),
        ),
        l4=_l4_from(data.get("l4")),
        source=source,
        destination=destination,
        type=_enum(data.get("Type"), FLOW_TYPE_NUMBERS, FlowType.UNKNOWN_TYPE),
        node_name=data.get("node_name", ""),
        l7=_l7_from(data.get("l7")),
        is_reply=None if reply is None else bool(reply),
        event_type=None if ev is None else EventType(
            _int(ev.get("type")), _int(ev.get("sub_type"))
        ),
        source_service=_service_from(data.get("source_service")),
        destination_service=_service_from(data.get("destination_service")),
        traffic_direction=_enum(
            data.get("traffic_direction"), DIRECTION_NUMBERS,
            TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN,
        ),
        policy_match_type=_int(data.get("policy_match_type")),
        trace_observation_point=str(data.get("trace_observation_point", "")),
        summary=data.get("Summary", ""),
        tulle=None if tulle is None else TulleInfo(
            **{k: v for k, v in tulle.items()
               if k in known and k not in ("tcp", "request", "tunnel")},
            tcp=tcp_from_json(tulle.get("tcp")),
            request_parts=reqsplit.from_json(tulle.get("request")),
            tunnel=_tunnel_from(tulle.get("tunnel")),
        ),
        **policies_from_json(data),
    )


def _drop(code: int) -> str:
    return DROP_REASONS.get(code, str(code))


def lost_event_from_json(data: JSON) -> LostEvent:
    """A LostEvent from a ``{"lost_events": …}`` line."""
    body = data.get("lost_events") or {}
    source = body.get("source", "UNKNOWN_LOST_EVENT_SOURCE")
    if isinstance(source, int) or str(source).isdigit():
        source = list(LostEventSource)[int(source)]
    cpu = body.get("cpu")
    if isinstance(cpu, dict):  # Int32Value written as an object by some encoders
        cpu = cpu.get("value")
    return LostEvent(
        source=LostEventSource(source),
        num_events_lost=_int(body.get("num_events_lost")),
        cpu=None if cpu is None else int(cpu),
        time=_time_from(data.get("time")),
        node_name=data.get("node_name", ""),
    )
