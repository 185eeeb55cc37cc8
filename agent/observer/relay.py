"""The relay: one observer API over every node's, with flows merged in time order.

    relay = Relay([("node-1", "unix:/run/tulle/node-1/observer.sock"),
                   ("node-2", "10.0.0.2:4244")], tcp_address="0.0.0.0:4245")
    relay.start()

For GetFlows the relay forwards the request (filters included) to every peer, each read
by its own thread, and merges what comes back without decoding flows: responses carry
their time. Without ``follow`` it collects every peer's answer (each bounded by
``request_timeout``), sorts, and applies ``number``/``first`` across nodes. With
``follow`` it holds each record for ``reorder_window`` seconds after it arrives and
releases records in time order, so streams that arrive a little late still interleave
correctly.

A peer that cannot be reached within ``connect_timeout`` is reported with a node_status
record (NODE_UNAVAILABLE) and left out; one that fails or times out mid-stream is
reported as NODE_ERROR. The relay never waits on a dead node beyond those timeouts.
Dropped peers are not redialled within one GetFlows call; the next call tries again.

With ``tls`` (agent.observer.tls.ClientTls) the relay dials TCP peers over mTLS: its client
certificate, the agents' CA, and the name ``<peer name>.<cluster>.observer.tulle.io``;
unix-socket peers stay plaintext. A peer whose handshake fails is reported with the reason
(expired, wrong name, another CA, or the agent refusing the relay's certificate), and
certificate files that change are used from the next dial on.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from agent.observer import RELAY_PORT
from agent.observer.client import probe
from agent.observer.convert import (
    NodeInfo,
    NodeStatus,
    ServerStatus,
    node_to_proto,
    status_from_proto,
    status_response,
    status_to_proto,
    version,
)
from agent.observer.gen import observer_pb2 as pb
from agent.observer.gen import observer_pb2_grpc as pb_grpc
from agent.observer.hosting import MAX_STREAMS, ObserverHost, StreamLimit, normalize_target

if TYPE_CHECKING:
    from agent.observer.tls import ClientTls


log = logging.getLogger("tulle.relay")


@dataclass(frozen=True)
class Peer:
    name: str
    address: str


def _is_unix(address: str) -> bool:
    return address.startswith("unix:")


class _PeerStream(threading.Thread):
    """Reads one peer's GetFlows stream into the shared queue, then puts ("done", name)."""

    def __init__(self, peer: Peer, channel: grpc.Channel, request: pb.GetFlowsRequest,
                 out: queue.Queue[tuple[Any, ...]], connect_timeout: float,
                 request_timeout: float | None,
                 explain: Callable[[Peer], str | None]) -> None:
        super().__init__(name=f"relay-{peer.name}", daemon=True)
        self.peer, self.channel, self.request, self.out = peer, channel, request, out
        self.explain = explain
        self.connect_timeout, self.request_timeout = connect_timeout, request_timeout
        self._call: Any = None
        self._cancelled = threading.Event()

    def _status(self, state: str, message: str = "") -> None:
        if state != "NODE_CONNECTED":  # the operator's view too (kubectl logs tulle-relay)
            log.warning("node %s: %s %s", self.peer.name, state, message)
        st = NodeStatus(state, (self.peer.name,), message, time.time_ns(), self.peer.name)
        self.out.put(("status", st))

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.out.put(("done", self.peer.name))

    def _run(self) -> None:
        problem = probe(self.channel, self.connect_timeout)
        if problem:
            problem = self.explain(self.peer) or problem
            self._status("NODE_UNAVAILABLE", f"{self.peer.address}: {problem}")
            return
        if self._cancelled.is_set():
            return
        self._status("NODE_CONNECTED")
        stub = pb_grpc.ObserverStub(self.channel)
        self._call = stub.GetFlows(self.request, timeout=self.request_timeout)
        if self._cancelled.is_set():
            self._call.cancel()
        try:
            for resp in self._call:
                self.out.put(("resp", resp))
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.CANCELLED and self._cancelled.is_set():
                return
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                self._status("NODE_ERROR", f"timed out after {self.request_timeout:g}s; "
                                           "its flows may be incomplete")
            elif code == grpc.StatusCode.UNAVAILABLE:
                self._status("NODE_UNAVAILABLE", e.details() or "unavailable")
            else:
                self._status("NODE_ERROR", f"{code.name}: {e.details()}")

    def cancel(self) -> None:
        self._cancelled.set()
        if self._call is not None:
            self._call.cancel()


def _is_flow(resp: pb.GetFlowsResponse) -> bool:
    return resp.WhichOneof("response_types") == "flow_json"


def trim(responses: list[pb.GetFlowsResponse], number: int, first: bool) -> list[Any]:
    """The first or last `number` flows of time-sorted responses, with the lost-event
    records inside that span (the rule of agent.flows.store.select_records)."""
    if number <= 0:
        return responses
    out = []
    flows = 0
    for resp in responses if first else reversed(responses):
        out.append(resp)
        if _is_flow(resp):
            flows += 1
            if flows == number:
                break
    return out if first else out[::-1]


class RelayService(pb_grpc.ObserverServicer):
    def __init__(self, peers: Sequence[tuple[str, str]], *, connect_timeout: float = 2.0,
                 request_timeout: float = 10.0, status_timeout: float = 2.0,
                 reorder_window: float = 0.3, max_streams: int = MAX_STREAMS,
                 tls: ClientTls | None = None) -> None:
        self.streams = StreamLimit(max_streams)
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.status_timeout = status_timeout
        self.reorder_window = reorder_window
        self.stopping = threading.Event()
        self._started_ns = time.time_ns()
        self._lock = threading.Lock()
        self._channels: dict[Peer, grpc.Channel] = {}
        self._peers: list[Peer] = []
        self.set_peers(peers)

    # -- peers -----------------------------------------------------------------------------

    def set_peers(self, peers: Sequence[tuple[str, str]]) -> None:
        """Replace the peer list (nodes joined or left); channels to gone peers close."""
        new = [Peer(name, normalize_target(addr)) for name, addr in peers]
        with self._lock:
            self._peers = new
            keep = set(new)
            for peer in [p for p in self._channels if p not in keep]:
                self._channels.pop(peer).close()

    def peers(self) -> list[Peer]:
        with self._lock:
            return list(self._peers)

    def _channel(self, peer: Peer) -> grpc.Channel:
        """The cached channel to `peer`; TLS channels are renewed when the files change."""
        renewed = self.tls is not None and self.tls.refresh()
        with self._lock:
            if renewed:  # new dials use the new pair; streams on the old channels go on
                for old in [p for p in self._channels if not _is_unix(p.address)]:
                    del self._channels[old]
            ch = self._channels.get(peer)
            if ch is None:
                if self.tls is None or _is_unix(peer.address):
                    ch = grpc.insecure_channel(peer.address)
                else:
                    ch = self.tls.channel(peer.address, peer.name)
                self._channels[peer] = ch
            return ch

    def explain(self, peer: Peer) -> str | None:
        """Why a TLS peer cannot be reached (None: not TLS, or not a TLS problem)."""
        if self.tls is None or _is_unix(peer.address):
            return None
        return self.tls.diagnose(peer.address, peer.name, self.connect_timeout)

    def close(self) -> None:
        self.stopping.set()
        with self._lock:
            for ch in self._channels.values():
                ch.close()
            self._channels.clear()

    # -- GetFlows --------------------------------------------------------------------------

    def GetFlows(  # noqa: N802 (gRPC method name)
        self, request: pb.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetFlowsResponse]:
        with self.streams.hold(context):  # each also holds one stream on every node
            yield from self._flows(request, context)

    def _flows(
        self, request: pb.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetFlowsResponse]:
        peers = self.peers()
        out: queue.Queue[tuple[Any, ...]] = queue.Queue()
        streams = [
            _PeerStream(p, self._channel(p), request, out, self.connect_timeout,
                        None if request.follow else self.request_timeout, self.explain)
            for p in peers
        ]
        for s in streams:
            s.start()
        try:
            if request.follow:
                yield from self._merge_follow(out, len(streams), context)
            else:
                yield from self._merge_all(out, len(streams), request)
        finally:
            for s in streams:
                s.cancel()

    def _merge_all(self, out: queue.Queue[tuple[Any, ...]], pending: int,
                   request: pb.GetFlowsRequest) -> Iterator[pb.GetFlowsResponse]:
        deadline = time.monotonic() + self.connect_timeout + self.request_timeout + 1.0
        responses: list[tuple[int, int, pb.GetFlowsResponse]] = []
        statuses: list[pb.GetFlowsResponse] = []
        while pending and time.monotonic() < deadline:
            try:
                item = out.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item[0] == "done":
                pending -= 1
            elif item[0] == "status":
                statuses.append(status_response(item[1]))
            else:
                resp = item[1]
                responses.append((resp.time.ToNanoseconds(), len(responses), resp))
        yield from statuses
        responses.sort(key=lambda r: (r[0], r[1]))
        yield from trim([r[2] for r in responses], request.number, request.first)

    def _merge_follow(self, out: queue.Queue[tuple[Any, ...]], pending: int,
                      context: grpc.ServicerContext) -> Iterator[pb.GetFlowsResponse]:
        window = self.reorder_window
        held: list[tuple[int, int, pb.GetFlowsResponse]] = []  # heap by flow time
        arrivals: deque[tuple[float, int]] = deque()  # (arrival, flow time), arrival order
        release_upto = -1  # flow time up to which held records may go out
        seq = 0
        while pending and context.is_active() and not self.stopping.is_set():
            items: list[tuple[Any, ...]] = []
            try:
                items.append(out.get(timeout=max(window / 4, 0.01)))
                while len(items) < 1024:
                    items.append(out.get_nowait())
            except queue.Empty:
                pass
            now = time.monotonic()
            for item in items:
                if item[0] == "done":
                    pending -= 1
                elif item[0] == "status":
                    yield status_response(item[1])
                else:
                    t = item[1].time.ToNanoseconds()
                    heapq.heappush(held, (t, seq, item[1]))
                    arrivals.append((now, t))
                    seq += 1
            while arrivals and arrivals[0][0] <= now - window:
                release_upto = max(release_upto, arrivals.popleft()[1])
            while held and held[0][0] <= release_upto:
                yield heapq.heappop(held)[2]
        while held and context.is_active():
            yield heapq.heappop(held)[2]

    # -- status ----------------------------------------------------------------------------

    def _peer_statuses(self) -> list[tuple[Peer, ServerStatus | None, str]]:
        peers = self.peers()
        if not peers:
            return []

        def ask(p: Peer) -> tuple[Peer, ServerStatus | None, str]:
            stub = pb_grpc.ObserverStub(self._channel(p))
            try:
                resp = stub.ServerStatus(pb.ServerStatusRequest(), timeout=self.status_timeout)
                return p, status_from_proto(resp), ""
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE:
                    return p, None, self.explain(p) or e.details() or e.code().name
                return p, None, e.details() or e.code().name

        with futures.ThreadPoolExecutor(max_workers=min(32, len(peers))) as pool:
            return list(pool.map(ask, peers))

    def status(self) -> ServerStatus:
        results = self._peer_statuses()
        up = [s for _, s, _ in results if s is not None]
        down = tuple(p.name for p, s, _ in results if s is None)
        lost: dict[str, int] = {}
        for s in up:
            for k, v in s.lost_events.items():
                lost[k] = lost.get(k, 0) + v
        return ServerStatus(
            num_flows=sum(s.num_flows for s in up),
            max_flows=sum(s.max_flows for s in up),
            seen_flows=sum(s.seen_flows for s in up),
            uptime_ns=max([s.uptime_ns for s in up], default=time.time_ns() - self._started_ns),
            flows_rate=sum(s.flows_rate for s in up),
            version=version(),
            num_connected_nodes=len(up),
            num_unavailable_nodes=len(down),
            unavailable_nodes=down,
            lost_events=lost,
        )

    def ServerStatus(  # noqa: N802
        self, request: pb.ServerStatusRequest, context: grpc.ServicerContext
    ) -> pb.ServerStatusResponse:
        return status_to_proto(self.status())

    def GetNodes(  # noqa: N802
        self, request: pb.GetNodesRequest, context: grpc.ServicerContext
    ) -> pb.GetNodesResponse:
        nodes = []
        for p, s, _ in self._peer_statuses():
            if s is None:
                nodes.append(NodeInfo(p.name, "NODE_UNAVAILABLE", p.address))
            else:
                nodes.append(NodeInfo(
                    p.name, "NODE_CONNECTED", p.address, s.version, s.uptime_ns,
                    s.num_flows, s.max_flows, s.seen_flows, s.flows_rate,
                ))
        return pb.GetNodesResponse(nodes=[node_to_proto(n) for n in nodes])


class Relay(ObserverHost):
    """Serves the merged API on TCP (default ``0.0.0.0:4245``) and optionally a unix socket."""

    def __init__(
        self,
        peers: Sequence[tuple[str, str]],
        *,
        tcp_address: str | None = f"0.0.0.0:{RELAY_PORT}",
        unix_socket: str | os.PathLike[str] | None = None,
        connect_timeout: float = 2.0,
        request_timeout: float = 10.0,
        status_timeout: float = 2.0,
        reorder_window: float = 0.3,
        max_workers: int = 32,
        max_streams: int = MAX_STREAMS,
        tls: ClientTls | None = None,
    ) -> None:
        super().__init__(tcp_address, unix_socket, max_workers, max_streams)
        self.service = RelayService(
            peers, connect_timeout=connect_timeout, request_timeout=request_timeout,
            status_timeout=status_timeout, reorder_window=reorder_window,
            max_streams=max_streams, tls=tls,
        )

    def set_peers(self, peers: Sequence[tuple[str, str]]) -> None:
        self.service.set_peers(peers)

    def stop(self, grace: float | None = 1.0) -> None:
        super().stop(grace)
        self.service.close()
