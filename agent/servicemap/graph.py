"""`build_graph`: the service dependency graph seen in a window of flows (pure).

Nodes are `Peer`s: workloads, services (``destination_service``) and collapsed peers (world,
host…). A request from workload A to service S served by workload B adds to two edges,
A → S and S → B, so the map shows which workloads back which service; a flow without a
service adds to A → B directly.

What counts, per edge:

- **L7** (HTTP): one request per RESPONSE flow (its source is the server, its destination
  the client), plus L7 flows the waypoint DROPPED (denied, no response). Errors are HTTP
  status >= 500 and drops; latency is ``l7.latency_ns``; requests that carry where their
  time went (``tulle.request``) add their parts to ``split_sum_ns``.
- **L3/L4**: one connection attempt per opening flow that is not a reply (a TCP SYN
  without ACK, or a datapath "new connection" event without flags; any UDP/ICMP opening
  flow), and one per DROPPED flow, which is also an error. Closing flows (those carrying
  ``tulle.duration_ns``) add their duration, the L4 "latency", and their bytes.

An edge's headline figures are its L7 ones when it carried any HTTP, else its L4 ones.

With a relay, one connection may be reported by the client's node (egress) and by the
server's node (ingress). Counts are therefore kept per traffic direction and an edge takes
the larger of the two, so a connection seen twice counts once while a drop seen only at
ingress still counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent.flows.flow import TCP, Flow, L7Type, Verdict
from agent.servicemap.peers import RESERVED, Peer, endpoint_peer, service_peer

SPLIT_PARTS = ("client_network", "proxy", "upstream_connect", "upstream_network", "backend")
_SPLIT_FIELDS = tuple(f"{p}_ns" for p in SPLIT_PARTS)
_L7_RESPONSE = L7Type.RESPONSE
_DROPPED = Verdict.DROPPED
_MIN_WINDOW_S = 1.0


def p99(values: list[int]) -> int | None:
    """Nearest-rank 99th percentile, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass(frozen=True)
class Edge:
    source: str  # Peer.id
    destination: str  # Peer.id
    window_s: float
    requests: int = 0  # L7 requests
    request_errors: int = 0  # HTTP >= 500 or denied
    connections: int = 0  # L4 connection attempts
    connection_errors: int = 0  # dropped
    p99_latency_ns: int | None = None  # L7
    p99_duration_ns: int | None = None  # L4, from closing flows
    bytes: int = 0  # both directions, from closing flows
    protocols: tuple[str, ...] = ()  # "HTTP", "TCP:5432", "UDP:53"…
    drop_reasons: tuple[tuple[str, int], ...] = ()  # most frequent first
    split_sum_ns: tuple[int, ...] = ()  # per SPLIT_PARTS, summed over split_requests
    split_requests: int = 0  # L7 requests that carried where their time went

    @property
    def is_l7(self) -> bool:
        return self.requests > 0

    @property
    def count(self) -> int:
        """Requests if the edge carried HTTP, else connection attempts."""
        return self.requests if self.is_l7 else self.connections

    @property
    def errors(self) -> int:
        return self.request_errors if self.is_l7 else self.connection_errors

    @property
    def unit(self) -> str:
        return "req" if self.is_l7 else "conn"

    @property
    def rate(self) -> float:
        """Requests (or connections) per second over the window."""
        return self.count / self.window_s

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @property
    def p99_ns(self) -> int | None:
        return self.p99_latency_ns if self.is_l7 else self.p99_duration_ns

    @property
    def has_errors(self) -> bool:
        return self.request_errors > 0 or self.connection_errors > 0

    @property
    def split_shares(self) -> list[tuple[str, float]]:
        """Each part's share of the requests' total time (empty without a split)."""
        total = sum(self.split_sum_ns)
        if not total:
            return []
        return [(p, n / total) for p, n in zip(SPLIT_PARTS, self.split_sum_ns, strict=True)]

    @property
    def dominant_part(self) -> tuple[str, float] | None:
        """Where most of the time went on this edge: (part, share), or None."""
        shares = self.split_shares
        return max(shares, key=lambda ps: ps[1]) if shares else None


@dataclass(frozen=True)
class ServiceGraph:
    nodes: tuple[Peer, ...]  # by namespace, then id
    edges: tuple[Edge, ...]  # by source, then destination
    window_s: float
    flows: int  # flows read

    def node(self, node_id: str) -> Peer:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def edge(self, source: str, destination: str) -> Edge:
        for e in self.edges:
            if e.source == source and e.destination == destination:
                return e
        raise KeyError((source, destination))

    def edges_from(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.source == node_id]

    @property
    def namespaces(self) -> list[str]:
        return sorted({n.namespace for n in self.nodes if n.namespace})


# -- accumulation --------------------------------------------------------------------------


@dataclass
class _Side:
    requests: int = 0
    request_errors: int = 0
    connections: int = 0
    connection_errors: int = 0


@dataclass
class _EdgeAcc:
    sides: dict[str, _Side] = field(default_factory=dict)
    latencies: list[int] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    bytes: int = 0
    protocols: dict[str, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    split: list[int] = field(default_factory=lambda: [0] * len(SPLIT_PARTS))
    split_requests: int = 0

    def side(self, direction: str) -> _Side:
        s = self.sides.get(direction)
        if s is None:
            s = self.sides[direction] = _Side()
        return s

    def freeze(self, source: str, destination: str, window_s: float) -> Edge:
        def most(attr: str) -> int:
            return max((getattr(s, attr) for s in self.sides.values()), default=0)

        requests, connections = most("requests"), most("connections")
        return Edge(
            source=source, destination=destination, window_s=window_s,
            requests=requests, request_errors=min(requests, most("request_errors")),
            connections=connections,
            connection_errors=min(connections, most("connection_errors")),
            p99_latency_ns=p99(self.latencies), p99_duration_ns=p99(self.durations),
            bytes=self.bytes,
            protocols=tuple(sorted(self.protocols, key=lambda p: (-self.protocols[p], p))),
            drop_reasons=tuple(sorted(self.drops.items(), key=lambda kv: (-kv[1], kv[0]))),
            split_sum_ns=tuple(self.split) if self.split_requests else (),
            split_requests=self.split_requests,
        )


def _l4_protocol(flow: Flow, reply: bool) -> str:
    l4 = flow.l4
    if l4 is None:
        return "IP"
    name = type(l4).__name__
    port = getattr(l4, "source_port" if reply else "destination_port", 0)
    return f"{name}:{port}" if port else name


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, Peer] = {}
        self.edges: dict[tuple[str, str], _EdgeAcc] = {}

    def _peer(self, peer: Peer) -> str:
        self.nodes.setdefault(peer.id, peer)
        return peer.id

    def hops(self, flow: Flow, client_is_source: bool) -> list[_EdgeAcc]:
        """The edges a request from client to server (via its service) adds to."""
        ip = flow.ip
        if client_is_source:
            c_ep, s_ep, svc = flow.source, flow.destination, flow.destination_service
            c_ip, s_ip = (ip.source, ip.destination) if ip else ("", "")
        else:
            c_ep, s_ep, svc = flow.destination, flow.source, flow.source_service
            c_ip, s_ip = (ip.destination, ip.source) if ip else ("", "")
        client = self._peer(endpoint_peer(c_ep, c_ip))
        server_peer = endpoint_peer(s_ep, s_ip)
        pairs: list[tuple[str, str]] = []
        if svc is not None and svc.name:
            service = self._peer(service_peer(svc))
            pairs.append((client, service))
            if server_peer.kind != RESERVED:  # the VIP itself resolves to "world"
                pairs.append((service, self._peer(server_peer)))
        else:
            pairs.append((client, self._peer(server_peer)))
        out = []
        for key in pairs:
            acc = self.edges.get(key)
            if acc is None:
                acc = self.edges[key] = _EdgeAcc()
            out.append(acc)
        return out

    def add(self, flow: Flow) -> None:
        l7 = flow.l7
        dropped = flow.verdict == _DROPPED
        direction = str(flow.traffic_direction)
        if l7 is not None:
            if l7.type == _L7_RESPONSE:
                client_is_source = flow.is_reply is False
            elif dropped:
                client_is_source = flow.is_reply is not True
            else:
                return  # requests are counted by their responses
            code = l7.http.code if l7.http is not None else 0
            failed = dropped or code >= 500
            split = flow.tulle.request if flow.tulle is not None else None
            for acc in self.hops(flow, client_is_source):
                if split is not None:
                    acc.split_requests += 1
                    for i, name in enumerate(_SPLIT_FIELDS):
                        acc.split[i] += getattr(split, name)
                side = acc.side(direction)
                side.requests += 1
                side.request_errors += failed
                if l7.latency_ns > 0:
                    acc.latencies.append(l7.latency_ns)
                acc.protocols["HTTP"] = acc.protocols.get("HTTP", 0) + 1
                if dropped:
                    reason = flow.drop_reason_desc or "DROPPED"
                    acc.drops[reason] = acc.drops.get(reason, 0) + 1
            return
        if flow.is_reply is True and not dropped:
            return
        info = flow.tulle
        duration = info.duration_ns if info is not None else 0
        if duration > 0:
            for acc in self.hops(flow, client_is_source=True):
                acc.durations.append(duration)
                acc.bytes += info.bytes_sent + info.bytes_received  # type: ignore[union-attr]
            return
        l4 = flow.l4
        if not dropped and isinstance(l4, TCP):
            flags = l4.flags
            opening = (flags.SYN and not flags.ACK) or not (
                flags.SYN or flags.ACK or flags.FIN or flags.RST or flags.PSH)
            if not opening:
                return
        reply = flow.is_reply is True
        proto = _l4_protocol(flow, reply)
        for acc in self.hops(flow, client_is_source=not reply):
            side = acc.side(direction)
            side.connections += 1
            side.connection_errors += dropped
            acc.protocols[proto] = acc.protocols.get(proto, 0) + 1
            if dropped:
                reason = flow.drop_reason_desc or "DROPPED"
                acc.drops[reason] = acc.drops.get(reason, 0) + 1


def build_graph(flows: Iterable[Flow], window: float | None = None) -> ServiceGraph:
    """The service graph of `flows`. `window` is the span in seconds the rates are over;
    None takes the span of the flows' timestamps (at least one second)."""
    builder = _Builder()
    count, first, last = 0, 0, 0
    for flow in flows:
        count += 1
        if flow.time:
            first = flow.time if not first else min(first, flow.time)
            last = max(last, flow.time)
        builder.add(flow)
    if window is None:
        window = (last - first) / 1e9 if first else 0.0
    window_s = max(float(window), _MIN_WINDOW_S)
    edges = tuple(acc.freeze(src, dst, window_s)
                  for (src, dst), acc in sorted(builder.edges.items()))
    nodes = tuple(sorted(builder.nodes.values(), key=lambda p: (p.namespace, p.kind, p.id)))
    return ServiceGraph(nodes=nodes, edges=edges, window_s=window_s, flows=count)
