"""The flow record: one decision seen by the datapath or the waypoint.

`Flow` mirrors the part of Hubble's ``flow.Flow`` that Tulle fills, with Hubble's field
meanings and enum names, plus Tulle-only data under one field, ``tulle`` (`TulleInfo`):
byte and packet counts, connection duration, the HTTPRoute rule and backend chosen, and
the BPF file and line of a drop.

Everything here is pure data. The JSON form (Hubble's `-o json` schema) lives in
`agent.flows.codec`; `flow_to_json` and `flow_from_json` are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from agent.flows.names import (
    FlowType,
    IPVersion,
    L7Type,
    LostEventSource,
    TrafficDirection,
    Verdict,
)

__all__ = [
    "HTTP", "ICMPv4", "ICMPv6", "IP", "TCP", "UDP", "Endpoint", "EventType", "Flow",
    "FlowType", "HTTPHeader", "IPVersion", "L7Type", "Layer4", "Layer7", "LostEvent",
    "LostEventSource", "Policy", "RequestParts", "RequestSplit", "Service", "SrttSummary",
    "TCPFlags", "TcpTrace", "TrafficDirection", "TulleInfo", "TunnelInfo", "Verdict",
    "Workload",
    "flow_from_json", "flow_to_json", "summarize",
]


@dataclass(frozen=True, slots=True)
class TCPFlags:
    SYN: bool = False
    ACK: bool = False
    RST: bool = False
    FIN: bool = False
    PSH: bool = False
    URG: bool = False
    ECE: bool = False
    CWR: bool = False
    NS: bool = False

    def names(self) -> list[str]:
        """Set flags in Hubble's print order (SYN, ACK, RST, FIN, PSH, URG, ECE, CWR, NS)."""
        return [name for name in _FLAG_ORDER if getattr(self, name)]

    @classmethod
    def of(cls, *names: str) -> TCPFlags:
        """TCPFlags.of("SYN", "ACK"); names are case-insensitive. Unknown names raise."""
        upper = [n.strip().upper() for n in names if n.strip()]
        bad = [n for n in upper if n not in _FLAG_ORDER]
        if bad:
            raise ValueError(f"unknown TCP flag {bad[0]!r} (known: {', '.join(_FLAG_ORDER)})")
        return cls(**{n: True for n in upper})

    @staticmethod
    def from_bits(bits: int) -> TCPFlags:
        """Flags from the TCP header's flag bits (FIN=0x01 … CWR=0x80, NS=0x100); cached,
        so decoders pay one dict lookup instead of building a frozen object per packet."""
        return _flags_from_bits(bits & 0x1FF)


_FLAG_ORDER = ("SYN", "ACK", "RST", "FIN", "PSH", "URG", "ECE", "CWR", "NS")
NO_FLAGS = TCPFlags()
_FLAG_BITS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
              "ECE": 0x40, "CWR": 0x80, "NS": 0x100}


@lru_cache(maxsize=512)
def _flags_from_bits(bits: int) -> TCPFlags:
    return TCPFlags(**{name: bool(bits & bit) for name, bit in _FLAG_BITS.items()})


@dataclass(frozen=True, slots=True)
class TCP:
    source_port: int
    destination_port: int
    flags: TCPFlags = NO_FLAGS


@dataclass(frozen=True, slots=True)
class UDP:
    source_port: int
    destination_port: int


@dataclass(frozen=True, slots=True)
class ICMPv4:
    type: int = 0
    code: int = 0


@dataclass(frozen=True, slots=True)
class ICMPv6:
    type: int = 0
    code: int = 0


Layer4 = TCP | UDP | ICMPv4 | ICMPv6


@dataclass(frozen=True, slots=True)
class IP:
    source: str
    destination: str
    ip_version: IPVersion = IPVersion.IPv4
    encrypted: bool = False
    source_xlated: str = ""  # a reply's source before reverse NAT (the backend behind a VIP)


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a flow. ``labels`` use Cilium's "source:key=value" form ("k8s:app=web").

    ``spiffe_id`` is Tulle's: a pod's workload identity, ``spiffe://<td>/ns/<ns>/sa/<sa>``
    (empty for the world, hosts and nodes). Hubble's endpoint has no such field, so the JSON
    carries it as ``tulle.source_spiffe_id`` / ``tulle.destination_spiffe_id``."""

    id: int = 0
    identity: int = 0
    namespace: str = ""
    labels: tuple[str, ...] = ()
    pod_name: str = ""
    workloads: tuple[Workload, ...] = ()
    spiffe_id: str = ""


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy behind a verdict (Hubble's ``flow.Policy``)."""

    name: str
    namespace: str = ""
    labels: tuple[str, ...] = ()
    revision: int = 0
    kind: str = ""


@dataclass(frozen=True, slots=True)
class EventType:
    """Monitor message type (see `agent.flows.names.EVENT_*`) and its sub type."""

    type: int
    sub_type: int = 0


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class HTTP:
    code: int = 0
    method: str = ""
    url: str = ""
    protocol: str = ""
    headers: tuple[HTTPHeader, ...] = ()


@dataclass(frozen=True, slots=True)
class Layer7:
    type: L7Type = L7Type.UNKNOWN_L7_TYPE
    latency_ns: int = 0
    http: HTTP | None = None


@dataclass(frozen=True, slots=True)
class SrttSummary:
    """The kernel's smoothed RTT over a connection's life, in microseconds (``tcp:tcp_probe``
    samples: one per segment received while established)."""

    min: int = 0
    mean: int = 0
    max: int = 0
    last: int = 0
    samples: int = 0


@dataclass(frozen=True, slots=True)
class TcpTrace:
    """What the kernel tracer measured for one TCP connection of a local pod (at its close)."""

    role: str = ""  # "client" (this pod connected) or "server" (this pod accepted)
    connect_latency_ns: int = 0  # client: SYN sent to ESTABLISHED; 0 if never established
    handshake_rtt_us: int = 0  # the kernel's first RTT sample: SYN/SYN-ACK round trip
    srtt_us: SrttSummary | None = None
    retransmits: int = 0  # retransmitted packets (tcp:tcp_retransmit_skb)
    retransmitted_segments: int = 0  # the kernel's total at close (ss "retrans:x/TOTAL")
    lifetime_ns: int = 0  # first SYN (client) or final handshake ACK (server) to close
    established: bool = False
    last_state: str = ""  # TCP state left for CLOSE ("SYN_SENT": the connect failed)


class RequestSplit(NamedTuple):
    """Where one request's time went (``agent.flows.reqsplit``), in ns. The parts add up to
    ``total_ns``: one round trip of the client's connection plus the waypoint's span
    (``l7.latency_ns``: request head read to response handed to the client).

    A named tuple, not a dataclass like its neighbours: a flow carries its parts as a plain
    tuple of six ints in this order (``TulleInfo.request_parts``: what the agent builds
    for every waypoint request, a tuple being the cheapest object to build and to fold
    into histograms), and this is the named view of them that readers get
    (``TulleInfo.request``; bench/results/tracecost-2026-12-06-s13.md)."""

    total_ns: int = 0
    client_network_ns: int = 0  # the kernel's smoothed RTT of the client's connection
    proxy_ns: int = 0  # inside the waypoint: request in -> upstream write, response in -> out
    upstream_connect_ns: int = 0  # opening upstream connections (0 on a pooled one)
    upstream_network_ns: int = 0  # the kernel's smoothed RTT of the upstream connection
    backend_ns: int = 0  # the rest: the backend's answer and its response body


RequestParts = tuple[int, ...]
"""A ``RequestSplit``'s six values as a plain tuple, in its fields' order (typed by no
width: the L7 record's field 13 carries them or marks, told apart by width at run time)."""


@dataclass(frozen=True, slots=True)
class TunnelInfo:
    """The mTLS tunnel behind a flow the waypoint reported (``agent.flows.tunnelflow``)."""

    side: str = ""  # "client" (the sending waypoint) or "server" (the receiving one)
    peer: str = ""  # the other waypoint's HBONE address, "ip:port"
    detail: str = ""  # why a tunnel was refused, e.g. OpenSSL's verify message


@dataclass(frozen=True, slots=True)
class TulleInfo:
    """What Tulle records beyond Hubble's schema; printed under the JSON key ``tulle``."""

    bytes_sent: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    duration_ns: int = 0
    route: str = ""  # "namespace/name": the HTTPRoute (GRPCRoute, ...) an L7 request
    # matched, or the TCPRoute/UDPRoute serving a kernel flow's Gateway listener
    rule: str = ""  # rule within the route, or the policy rule that decided
    backend: str = ""  # backend chosen: "namespace/service:port" or "ip:port"
    drop_file: str = ""  # BPF source file that dropped
    drop_line: int = 0
    conn_id: int = 0  # connection id shared by all flows of one connection
    tcp: TcpTrace | None = None  # kernel connection trace (close records)
    socket_id: int = 0  # traced socket: its close record and its kernel drops share this
    kernel_drop_reason: int = 0  # enum skb_drop_reason code (name in drop_reason_desc)
    kernel_drop_location: str = ""  # kernel function that freed the packet ("tcp_v4_rcv+0x…")
    # L7: where the request's time went, RequestSplit's six ints in its order (``request``
    # names them); a plain tuple, or a RequestSplit (a tuple too); or, as the agent builds
    # a common waypoint request's flow, bytes: its row of the batch's column, the five LEAN
    # clock readings still to split (``reqsplit.LEAN_ROW``; span: ``duration_ns``). The
    # split is computed when read (``request``, ``parts``), and the metrics fold the rows
    # in batches (`agent.metrics.split`)
    request_parts: RequestParts | bytes | None = None
    # mTLS: the identity the peer's certificate presented, when it is not the SPIFFE ID of
    # the pod at that address (a refused handshake: wrong identity, another CA's workload)
    peer_spiffe_id: str = ""
    tunnel: TunnelInfo | None = None  # the waypoint's tunnel, for its tunnel flows

    @property
    def parts(self) -> RequestParts | None:
        """The split's six parts as a plain tuple (``request_parts``, split now if it holds
        clock readings: computed on each read, nothing cached on a frozen flow)."""
        parts = self.request_parts
        if type(parts) is bytes:
            from agent.flows.reqsplit import LEAN_ROW, split_lean  # it imports this module

            return split_lean(self.duration_ns, LEAN_ROW.unpack(parts))
        return parts  # type: ignore[return-value]  # a tuple or None: not bytes

    @property
    def request(self) -> RequestSplit | None:
        """``parts`` by name (a view built on each read: the agent's own hot path, the
        metrics, reads the tuple)."""
        parts = self.parts
        if parts is None or type(parts) is RequestSplit:
            return parts
        return RequestSplit._make(parts)


@dataclass(frozen=True, slots=True)
class Flow:
    time: int = 0  # nanoseconds since the Unix epoch
    uuid: str = ""
    verdict: Verdict = Verdict.VERDICT_UNKNOWN
    drop_reason: int = 0
    drop_reason_desc: str = ""  # Hubble's DropReason name, e.g. "POLICY_DENIED"
    ip: IP | None = None
    l4: Layer4 | None = None
    source: Endpoint | None = None
    destination: Endpoint | None = None
    type: FlowType = FlowType.UNKNOWN_TYPE
    node_name: str = ""
    l7: Layer7 | None = None
    is_reply: bool | None = None  # None: unknown direction
    event_type: EventType | None = None
    source_service: Service | None = None
    destination_service: Service | None = None
    traffic_direction: TrafficDirection = TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN
    policy_match_type: int = 0
    trace_observation_point: str = ""  # Hubble enum name, e.g. "TO_ENDPOINT"
    summary: str = ""  # empty: derived by summarize() when printed
    tulle: TulleInfo | None = None
    # The policies behind a policy verdict (Hubble's names; agent.flows.policyjson)
    egress_allowed_by: tuple[Policy, ...] = ()
    ingress_allowed_by: tuple[Policy, ...] = ()
    egress_denied_by: tuple[Policy, ...] = ()
    ingress_denied_by: tuple[Policy, ...] = ()


@dataclass(frozen=True, slots=True)
class LostEvent:
    """Events lost before they reached readers, like Hubble's ``flow.LostEvent``."""

    source: LostEventSource
    num_events_lost: int
    cpu: int | None = None
    time: int = 0  # when the loss was recorded, ns since the epoch
    node_name: str = ""


# -- the Summary text, as Hubble's parsers write it ----------------------------------------

_ICMP4_TYPES = {
    0: "EchoReply", 3: "DestinationUnreachable", 4: "SourceQuench", 5: "Redirect",
    8: "EchoRequest", 9: "RouterAdvertisement", 10: "RouterSolicitation", 11: "TimeExceeded",
    12: "ParameterProblem", 13: "TimestampRequest", 14: "TimestampReply",
}
_ICMP4_UNREACHABLE = {
    0: "Net", 1: "Host", 2: "Protocol", 3: "Port", 4: "FragmentationNeeded",
    5: "SourceRoutingFailed", 13: "CommAdminProhibited",
}
_ICMP6_TYPES = {
    1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded",
    4: "ParameterProblem", 128: "EchoRequest", 129: "EchoReply",
    133: "RouterSolicitation", 134: "RouterAdvertisement", 135: "NeighborSolicitation",
    136: "NeighborAdvertisement",
}


def _icmp_text(names: dict[int, str], type_: int, code: int, unreachable: int) -> str:
    name = names.get(type_, f"Type({type_})")
    if type_ == unreachable and unreachable == 3 and code in _ICMP4_UNREACHABLE:
        return f"{name}({_ICMP4_UNREACHABLE[code]})"
    return name if code == 0 else f"{name}(Code: {code})"


def summarize(flow: Flow) -> str:
    """Hubble's Summary for a flow: "TCP Flags: SYN", "HTTP/1.1 200 3ms (GET http://x/)"…"""
    if flow.summary:
        return flow.summary
    l7 = flow.l7
    if l7 is not None and l7.http is not None:
        http = l7.http
        request = f"{http.method} {http.url}"
        if l7.type == L7Type.RESPONSE:
            # a gRPC call's status (``l7record``: the grpc-status header) after Hubble's text
            grpc = "".join(f" grpc-status {h.value}"
                           for h in http.headers if h.key == "grpc-status")
            return (f"{http.protocol} {http.code} {l7.latency_ns // 1_000_000}ms ({request})"
                    f"{grpc}")
        return f"{http.protocol} {request}"
    l4 = flow.l4
    if isinstance(l4, TCP):
        return "TCP Flags: " + ", ".join(l4.flags.names())
    if isinstance(l4, UDP):
        return "UDP"
    if isinstance(l4, ICMPv4):
        return "ICMPv4 " + _icmp_text(_ICMP4_TYPES, l4.type, l4.code, 3)
    if isinstance(l4, ICMPv6):
        return "ICMPv6 " + _icmp_text(_ICMP6_TYPES, l4.type, l4.code, 1)
    return ""


# Re-exported at the end to keep one import path (agent.flows.flow) for the record and its
# JSON form; codec and fromjson import the classes above.
from agent.flows.codec import flow_to_json  # noqa: E402
from agent.flows.fromjson import flow_from_json  # noqa: E402
