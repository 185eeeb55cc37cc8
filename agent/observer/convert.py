"""The one translation between the observer proto and Tulle's Python types.

Flows cross the API as JSON (`agent.flows.codec`), so this module only maps filters,
requests, responses and status messages.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import metadata

from agent.flows.codec import flow_to_json
from agent.flows.filters import EventTypeFilter, FlowFilter
from agent.flows.flow import Flow, LostEvent, TCPFlags
from agent.flows.fromjson import flow_from_json
from agent.flows.names import LostEventSource
from agent.observer.gen import observer_pb2 as pb

ALL = 2**64 - 1  # GetFlowsRequest.number meaning "every stored flow"

_FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")
_STRING_FIELDS = (
    "uuid", "source_ip", "source_pod", "source_label", "source_service", "destination_ip",
    "destination_pod", "destination_label", "destination_service", "traffic_direction",
    "verdict", "http_status_code", "protocol", "source_port", "destination_port",
    "http_method", "http_path", "node_name", "ip_version", "drop_reason_desc",
    "tcp_retransmits", "tcp_rtt_over", "tcp_connect_over", "http_url",
    "source_spiffe_id", "destination_spiffe_id",
)


def version() -> str:
    try:
        return metadata.version("tulle")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


# -- filters -------------------------------------------------------------------------------


def filter_to_proto(ff: FlowFilter) -> pb.FlowFilter:
    msg = pb.FlowFilter()
    for name in _STRING_FIELDS:
        getattr(msg, name).extend(getattr(ff, name))
    msg.source_identity.extend(ff.source_identity)
    msg.destination_identity.extend(ff.destination_identity)
    msg.reply.extend(ff.reply)
    msg.encrypted.extend(ff.encrypted)
    for kind, name in ff.source_workload:
        msg.source_workload.add(kind=kind, name=name)
    for kind, name in ff.destination_workload:
        msg.destination_workload.add(kind=kind, name=name)
    for key, value in ff.http_header:
        msg.http_header.add(key=key, value=value)
    for et in ff.event_type:
        msg.event_type.add(type=et.type, match_sub_type=et.sub_type is not None,
                           sub_type=et.sub_type or 0)
    for flags in ff.tcp_flags:
        msg.tcp_flags.add(**{n: getattr(flags, n) for n in _FLAG_NAMES})
    return msg


def filter_from_proto(msg: pb.FlowFilter) -> FlowFilter:
    kwargs: dict[str, object] = {name: tuple(getattr(msg, name)) for name in _STRING_FIELDS}
    return FlowFilter(
        **kwargs,  # type: ignore[arg-type]
        source_identity=tuple(msg.source_identity),
        destination_identity=tuple(msg.destination_identity),
        reply=tuple(msg.reply),
        encrypted=tuple(msg.encrypted),
        source_workload=tuple((w.kind, w.name) for w in msg.source_workload),
        destination_workload=tuple((w.kind, w.name) for w in msg.destination_workload),
        http_header=tuple((h.key, h.value) for h in msg.http_header),
        event_type=tuple(
            EventTypeFilter(e.type, e.sub_type if e.match_sub_type else None)
            for e in msg.event_type
        ),
        tcp_flags=tuple(TCPFlags(**{n: getattr(t, n) for n in _FLAG_NAMES})
                        for t in msg.tcp_flags),
    )


# -- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowsQuery:
    """What a GetFlows caller asks for (see GetFlowsRequest in the proto)."""

    number: int = 0
    first: bool = False
    follow: bool = False
    whitelist: tuple[FlowFilter, ...] = ()
    blacklist: tuple[FlowFilter, ...] = ()
    since: int | None = None  # ns since the epoch
    until: int | None = None


def query_to_proto(q: FlowsQuery) -> pb.GetFlowsRequest:
    req = pb.GetFlowsRequest(number=q.number, first=q.first, follow=q.follow)
    req.whitelist.extend(filter_to_proto(f) for f in q.whitelist)
    req.blacklist.extend(filter_to_proto(f) for f in q.blacklist)
    if q.since is not None:
        req.since.FromNanoseconds(q.since)
    if q.until is not None:
        req.until.FromNanoseconds(q.until)
    return req


def query_from_proto(req: pb.GetFlowsRequest) -> FlowsQuery:
    return FlowsQuery(
        number=req.number,
        first=req.first,
        follow=req.follow,
        whitelist=tuple(filter_from_proto(f) for f in req.whitelist),
        blacklist=tuple(filter_from_proto(f) for f in req.blacklist),
        since=req.since.ToNanoseconds() if req.HasField("since") else None,
        until=req.until.ToNanoseconds() if req.HasField("until") else None,
    )


# -- responses -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    """A relay's notice about nodes: NODE_CONNECTED, NODE_UNAVAILABLE, NODE_ERROR…"""

    state: str
    node_names: tuple[str, ...]
    message: str = ""
    time: int = 0
    node_name: str = ""


Event = Flow | LostEvent | NodeStatus


def flow_response(flow: Flow, node_name: str) -> pb.GetFlowsResponse:
    resp = pb.GetFlowsResponse(
        flow_json=json.dumps(flow_to_json(flow), separators=(",", ":")),
        node_name=flow.node_name or node_name,
    )
    resp.time.FromNanoseconds(flow.time)
    return resp


def lost_response(ev: LostEvent, node_name: str) -> pb.GetFlowsResponse:
    lost = pb.LostEvent(source=pb.LostEventSource.Value(ev.source.value),
                        num_events_lost=ev.num_events_lost)
    if ev.cpu is not None:
        lost.cpu = ev.cpu
    resp = pb.GetFlowsResponse(lost_events=lost, node_name=ev.node_name or node_name)
    resp.time.FromNanoseconds(ev.time)
    return resp


def status_response(st: NodeStatus) -> pb.GetFlowsResponse:
    resp = pb.GetFlowsResponse(
        node_status=pb.NodeStatusEvent(
            state_change=pb.NodeState.Value(st.state), node_names=list(st.node_names),
            message=st.message,
        ),
        node_name=st.node_name,
    )
    resp.time.FromNanoseconds(st.time)
    return resp


def event_from_response(resp: pb.GetFlowsResponse) -> Event | None:
    """Decode one GetFlowsResponse; None for a kind this client does not know."""
    kind = resp.WhichOneof("response_types")
    t = resp.time.ToNanoseconds()
    if kind == "flow_json":
        flow = flow_from_json(json.loads(resp.flow_json))
        if not flow.node_name and resp.node_name:
            flow = dataclasses.replace(flow, node_name=resp.node_name)
        return flow
    if kind == "lost_events":
        le = resp.lost_events
        return LostEvent(
            source=LostEventSource(pb.LostEventSource.Name(le.source)),
            num_events_lost=le.num_events_lost,
            cpu=le.cpu if le.HasField("cpu") else None,
            time=t,
            node_name=resp.node_name,
        )
    if kind == "node_status":
        ns = resp.node_status
        return NodeStatus(pb.NodeState.Name(ns.state_change), tuple(ns.node_names),
                          ns.message, t, resp.node_name)
    return None


# -- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerStatus:
    num_flows: int
    max_flows: int
    seen_flows: int
    uptime_ns: int
    flows_rate: float
    version: str = ""
    num_connected_nodes: int | None = None
    num_unavailable_nodes: int | None = None
    unavailable_nodes: tuple[str, ...] = ()
    lost_events: dict[str, int] = field(default_factory=dict)


def status_to_proto(s: ServerStatus) -> pb.ServerStatusResponse:
    msg = pb.ServerStatusResponse(
        num_flows=s.num_flows, max_flows=s.max_flows, seen_flows=s.seen_flows,
        uptime_ns=s.uptime_ns, flows_rate=s.flows_rate, version=s.version,
        unavailable_nodes=list(s.unavailable_nodes), lost_events=s.lost_events,
    )
    if s.num_connected_nodes is not None:
        msg.num_connected_nodes = s.num_connected_nodes
    if s.num_unavailable_nodes is not None:
        msg.num_unavailable_nodes = s.num_unavailable_nodes
    return msg


def status_from_proto(m: pb.ServerStatusResponse) -> ServerStatus:
    return ServerStatus(
        num_flows=m.num_flows, max_flows=m.max_flows, seen_flows=m.seen_flows,
        uptime_ns=m.uptime_ns, flows_rate=m.flows_rate, version=m.version,
        num_connected_nodes=m.num_connected_nodes if m.HasField("num_connected_nodes") else None,
        num_unavailable_nodes=(
            m.num_unavailable_nodes if m.HasField("num_unavailable_nodes") else None
        ),
        unavailable_nodes=tuple(m.unavailable_nodes),
        lost_events=dict(m.lost_events),
    )


@dataclass(frozen=True)
class NodeInfo:
    name: str
    state: str  # NODE_CONNECTED, NODE_UNAVAILABLE…
    address: str = ""
    version: str = ""
    uptime_ns: int = 0
    num_flows: int = 0
    max_flows: int = 0
    seen_flows: int = 0
    flows_rate: float = 0.0


def node_to_proto(n: NodeInfo) -> pb.Node:
    return pb.Node(
        name=n.name, state=pb.NodeState.Value(n.state), address=n.address, version=n.version,
        uptime_ns=n.uptime_ns, num_flows=n.num_flows, max_flows=n.max_flows,
        seen_flows=n.seen_flows, flows_rate=n.flows_rate,
    )


def node_from_proto(m: pb.Node) -> NodeInfo:
    return NodeInfo(
        name=m.name, state=pb.NodeState.Name(m.state), address=m.address, version=m.version,
        uptime_ns=m.uptime_ns, num_flows=m.num_flows, max_flows=m.max_flows,
        seen_flows=m.seen_flows, flows_rate=m.flows_rate,
    )
