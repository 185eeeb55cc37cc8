"""One node's observer API over its `FlowRing`.

    ring = FlowRing()
    server = ObserverServer(ring, "node-1", tcp_address="127.0.0.1:4244",
                            unix_socket="/run/tulle/node-1/observer.sock")
    server.start()
    ...
    server.stop()

GetFlows returns the selected history (last or first N, since/until, filters) and, with
``follow``, then streams new records as the ring receives them. Lost-event records pass
every filter, so readers learn about gaps.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from agent.flows.filters import FilterError, compile_filters
from agent.flows.flow import Flow, LostEvent
from agent.flows.store import FlowRing, Record, select_records
from agent.observer import AGENT_PORT
from agent.observer.convert import (
    NodeInfo,
    ServerStatus,
    flow_response,
    lost_response,
    node_to_proto,
    query_from_proto,
    status_to_proto,
    version,
)
from agent.observer.gen import observer_pb2 as pb
from agent.observer.gen import observer_pb2_grpc as pb_grpc
from agent.observer.hosting import MAX_STREAMS, GrpcHost, ObserverHost, StreamLimit

if TYPE_CHECKING:
    from agent.observer.tls import ServerTls


class ObserverService(pb_grpc.ObserverServicer):
    """The servicer: GetFlows, ServerStatus and GetNodes over one ring."""

    def __init__(
        self,
        ring: FlowRing,
        node_name: str,
        *,
        address: str = "",
        poll_interval: float = 0.25,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.ring = ring
        self.node_name = node_name
        self.address = address
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.streams = StreamLimit(max_streams)

    def _response(self, rec: Record) -> pb.GetFlowsResponse:
        if isinstance(rec, Flow):
            return flow_response(rec, self.node_name)
        return lost_response(rec, self.node_name)

    def GetFlows(  # noqa: N802 (gRPC method name)
        self, request: pb.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetFlowsResponse]:
        with self.streams.hold(context):
            yield from self._flows(request, context)

    def _flows(
        self, request: pb.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetFlowsResponse]:
        q = query_from_proto(request)
        try:
            keep = compile_filters(q.whitelist, q.blacklist)
        except FilterError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid filter: {e}")
        records, pos = self.ring.snapshot()
        if not q.follow or q.number or q.since is not None:
            history = select_records(records, q.number, first=q.first, since=q.since,
                                     until=q.until, predicate=keep)
            for rec in history:
                yield self._response(rec)
        if not q.follow:
            return
        cursor = self.ring.follow(pos)
        while context.is_active() and not self.stopping.is_set():
            for rec in cursor.wait(self.poll_interval):
                if isinstance(rec, LostEvent):
                    yield self._response(rec)
                    continue
                if q.until is not None and rec.time > q.until:
                    return
                if keep(rec):
                    yield self._response(rec)

    def status(self) -> ServerStatus:
        s = self.ring.stats()
        return ServerStatus(
            num_flows=s.num_flows, max_flows=s.max_flows, seen_flows=s.seen_flows,
            uptime_ns=s.uptime_ns, flows_rate=s.flows_rate, version=version(),
            num_connected_nodes=1, num_unavailable_nodes=0, lost_events=s.lost,
        )

    def ServerStatus(  # noqa: N802
        self, request: pb.ServerStatusRequest, context: grpc.ServicerContext
    ) -> pb.ServerStatusResponse:
        return status_to_proto(self.status())

    def GetNodes(  # noqa: N802
        self, request: pb.GetNodesRequest, context: grpc.ServicerContext
    ) -> pb.GetNodesResponse:
        s = self.status()
        node = NodeInfo(
            name=self.node_name, state="NODE_CONNECTED", address=self.address,
            version=s.version, uptime_ns=s.uptime_ns, num_flows=s.num_flows,
            max_flows=s.max_flows, seen_flows=s.seen_flows, flows_rate=s.flows_rate,
        )
        return pb.GetNodesResponse(nodes=[node_to_proto(node)])


class ObserverServer(ObserverHost):
    """Serves a node's ring on TCP (default ``127.0.0.1:4244``: the node's own loopback, see
    ARCHITECTURE's "Exposure") and, if given, a unix socket. With ``tls`` the TCP port
    speaks mTLS: the relay's client certificate is required (agent.observer.tls). At most
    ``max_streams`` GetFlows calls run at once."""

    def __init__(
        self,
        ring: FlowRing,
        node_name: str,
        *,
        tcp_address: str | None = f"127.0.0.1:{AGENT_PORT}",
        unix_socket: str | os.PathLike[str] | None = None,
        max_workers: int = 32,
        max_streams: int = MAX_STREAMS,
        tls: ServerTls | None = None,
    ) -> None:
        super().__init__(tcp_address, unix_socket, max_workers, max_streams,
                         tls.credentials if tls is not None else None)
        self.ring = ring
        self.node_name = node_name
        self.service = ObserverService(ring, node_name, address=tcp_address or "",
                                       max_streams=max_streams)

    def _started(self, host: GrpcHost) -> None:
        if host.tcp_port is not None:
            self.service.address = host.targets[-1]

    def _stopping(self) -> None:
        self.ring.wake_all()

