"""Flows from Hubble's JSON: the reverse of `agent.flows.codec`.

`flow_from_json` reads what `flow_to_json` writes, and tolerates Hubble's own output: a bare
flow or the ``{"flow": …}`` envelope, enums as names or numbers, integers as strings or
numbers, and fields it does not know.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agent.flows import reqsplit
from agent.flows.codec import (
    DESTINATION_SPIFFE_ID,
    JSON,
    SOURCE_SPIFFE_ID,
    TULLE_KEYS,
    parse_time,
)
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
)
from agent.flows.names import (
    DIRECTION_NUMBERS,
    DROP_REASONS,
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
from agent.flows.policyjson import policies_from_json
from agent.flows.tcpjson import tcp_from_json


def _tunnel_from(d: Any) -> TunnelInfo | None:
    if not isinstance(d, dict):
        return None
    return TunnelInfo(**{k: str(d.get(k, "")) for k in TunnelInfo.__slots__})



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
    known = {key for key, _name in TULLE_KEYS}
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
