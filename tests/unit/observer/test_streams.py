"""The observer API caps concurrent GetFlows streams: over the cap a call fails fast with
RESOURCE_EXHAUSTED and a message naming the limit, while status calls still get a thread.
Real grpcio clients over the server's unix socket and TCP loopback port."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from agent.flows.store import FlowRing
from agent.observer.gen import observer_pb2 as pb
from agent.observer.gen import observer_pb2_grpc as pb_grpc
from agent.observer.hosting import MAX_STREAMS, StreamLimit
from agent.observer.relay import Relay
from agent.observer.server import ObserverServer

FOLLOW = pb.GetFlowsRequest(follow=True)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ObserverServer]:
    server = ObserverServer(FlowRing(100), "node-1", tcp_address="127.0.0.1:0",
                            unix_socket=tmp_path / "node-1.sock").start()
    yield server
    server.stop(grace=0)


def refused(stub: pb_grpc.ObserverStub, request: pb.GetFlowsRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.GetFlows(request, timeout=5))
    return caught.value


def test_streams_over_the_cap_are_refused_with_resource_exhausted(node: ObserverServer) -> None:
    unix, tcp = node.targets
    channels = [grpc.insecure_channel(unix), grpc.insecure_channel(tcp)]
    stubs = [pb_grpc.ObserverStub(c) for c in channels]
    limit = node.service.streams
    assert limit.limit == MAX_STREAMS
    calls = [stubs[i % 2].GetFlows(FOLLOW) for i in range(MAX_STREAMS)]
    try:
        wait_for(lambda: limit.active == MAX_STREAMS, f"{MAX_STREAMS} follow streams")
        for stub, request in ((stubs[0], FOLLOW), (stubs[1], pb.GetFlowsRequest(number=5))):
            err = refused(stub, request)
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert f"this server allows {MAX_STREAMS}" in (err.details() or "")
        assert limit.refused == 2
        # Status calls still get a worker thread while every stream slot is taken.
        status = stubs[1].ServerStatus(pb.ServerStatusRequest(), timeout=5)
        assert status.max_flows == 100
        # A client that leaves frees its slot for the next one.
        calls.pop().cancel()
        wait_for(lambda: limit.active == MAX_STREAMS - 1, "the cancelled stream to end")
        calls.append(stubs[0].GetFlows(FOLLOW))
        wait_for(lambda: limit.active == MAX_STREAMS, "the new stream")
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()
    wait_for(lambda: limit.active == 0, "every stream to end")


def test_the_relay_caps_its_streams_too(node: ObserverServer, tmp_path: Path) -> None:
    relay = Relay([("node-1", node.targets[0])], tcp_address=None,
                  unix_socket=tmp_path / "relay.sock", max_streams=2).start()
    channel = grpc.insecure_channel(relay.targets[0])
    stub = pb_grpc.ObserverStub(channel)
    calls = [stub.GetFlows(FOLLOW) for _ in range(2)]
    try:
        wait_for(lambda: relay.service.streams.active == 2, "2 relay streams")
        err = refused(stub, FOLLOW)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "this server allows 2" in (err.details() or "")
    finally:
        for call in calls:
            call.cancel()
        channel.close()
        relay.stop(grace=0)


def test_a_cap_that_would_starve_status_calls_is_refused() -> None:
    with pytest.raises(ValueError, match="must stay below the worker threads"):
        ObserverServer(FlowRing(10), "n", tcp_address=None, unix_socket="/tmp/x.sock",
                       max_workers=4, max_streams=4)
    with pytest.raises(ValueError, match="at least 1"):
        StreamLimit(0)
