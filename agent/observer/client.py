"""Client side of the observer API, as the CLI uses it (agent or relay alike)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from agent.observer.convert import (
    Event,
    FlowsQuery,
    NodeInfo,
    ServerStatus,
    event_from_response,
    node_from_proto,
    query_to_proto,
    status_from_proto,
)
from agent.observer.gen import observer_pb2 as pb
from agent.observer.gen import observer_pb2_grpc as pb_grpc
from agent.observer.hosting import normalize_target


def probe(channel: grpc.Channel, timeout: float) -> str | None:
    """Ask an observer on `channel` for its status; None if it answered, else what failed.

    A refused connection or a missing socket fails at once with gRPC's reason; an address
    that never answers fails after `timeout` seconds. (A plain call stands in for
    grpc.channel_ready_future, whose polling thread races with closing the channel.)
    """
    try:
        pb_grpc.ObserverStub(channel).ServerStatus(pb.ServerStatusRequest(), timeout=timeout)
        return None
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"nothing answered within {timeout:g}s"
        return e.details() or e.code().name


class ObserverUnavailable(Exception):
    """Nothing answered at the address (or it went away); the message says which and why."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason


class ObserverRequestError(Exception):
    """The server refused the request (for example an invalid filter)."""


class ObserverClient:
    def __init__(self, address: str, *, connect_timeout: float = 5.0) -> None:
        self.address = address
        self.target = normalize_target(address)
        self.connect_timeout = connect_timeout
        self._channel = grpc.insecure_channel(self.target)
        self._stub = pb_grpc.ObserverStub(self._channel)
        self._connected = False

    def connect(self) -> None:
        """Wait for the server; raises ObserverUnavailable after `connect_timeout` seconds."""
        if self._connected:
            return
        problem = probe(self._channel, self.connect_timeout)
        if problem:
            raise ObserverUnavailable(self.address, problem)
        self._connected = True

    def _error(self, e: grpc.RpcError) -> Exception:
        code = e.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return ObserverUnavailable(self.address, e.details() or code.name)
        return ObserverRequestError(e.details() or code.name)

    def get_flows(self, query: FlowsQuery) -> Iterator[Event]:
        """Flows, lost events and node notices, in the server's order."""
        self.connect()
        call = self._stub.GetFlows(query_to_proto(query))
        try:
            for resp in call:
                ev = event_from_response(resp)
                if ev is not None:
                    yield ev
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            raise self._error(e) from None
        finally:
            call.cancel()

    def server_status(self, timeout: float = 10.0) -> ServerStatus:
        self.connect()
        try:
            return status_from_proto(self._stub.ServerStatus(pb.ServerStatusRequest(),
                                                             timeout=timeout))
        except grpc.RpcError as e:
            raise self._error(e) from None

    def get_nodes(self, timeout: float = 10.0) -> list[NodeInfo]:
        self.connect()
        try:
            resp = self._stub.GetNodes(pb.GetNodesRequest(), timeout=timeout)
        except grpc.RpcError as e:
            raise self._error(e) from None
        return [node_from_proto(n) for n in resp.nodes]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ObserverClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
