"""The relay merges nodes' flows in time order and reports slow and dead nodes."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest

from agent.flows.flow import Flow
from agent.flows.store import FlowRing
from agent.observer.client import ObserverClient
from agent.observer.convert import ALL, FlowsQuery, NodeStatus
from agent.observer.gen import observer_pb2 as pb
from agent.observer.gen import observer_pb2_grpc as pb_grpc
from agent.observer.hosting import GrpcHost
from agent.observer.relay import Relay
from agent.observer.server import ObserverService
from tests.unit.flows.samples import T0, syn
from tests.unit.observer.conftest import Follower, NodeFactory


class SlowService(ObserverService):
    """A node that answers, but sleeps before every record it sends."""

    def __init__(self, ring: FlowRing, name: str, delay: float) -> None:
        super().__init__(ring, name, poll_interval=0.05)
        self.delay = delay

    def GetFlows(  # noqa: N802
        self, request: pb.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetFlowsResponse]:
        for resp in super().GetFlows(request, context):
            time.sleep(self.delay)
            yield resp


def ring_with(name: str, ms: list[int]) -> FlowRing:
    ring = FlowRing(1000)
    ring.put_many(syn(T0 + m * 1_000_000, uuid=f"{name}@{m}", node_name=name) for m in ms)
    return ring


def flow_ids(events: Sequence[object]) -> list[str]:
    return [e.uuid for e in events if isinstance(e, Flow)]


def statuses(events: Sequence[object]) -> dict[str, tuple[str, str]]:
    return {n: (e.state, e.message) for e in events if isinstance(e, NodeStatus)
            for n in e.node_names}


@pytest.fixture
def slow_node(tmp_path: Path) -> Iterator[tuple[FlowRing, str]]:
    ring = ring_with("slow", [2, 5, 8])
    service = SlowService(ring, "slow", delay=0.05)
    host = GrpcHost(lambda s: pb_grpc.add_ObserverServicer_to_server(service, s),
                    tcp_address=None, unix_socket=tmp_path / "slow.sock")
    yield ring, host.targets[0]
    service.stopping.set()
    host.stop(grace=0)


def test_merge_in_time_order_with_a_slow_and_a_dead_node(
    start_node: NodeFactory, slow_node: tuple[FlowRing, str], tmp_path: Path
) -> None:
    a = start_node("a", ring_with("a", [1, 4, 7, 10]))
    b = start_node("b", ring_with("b", [3, 6, 9]), tcp=True)
    peers = [("a", a.targets[0]), ("b", b.targets[1]), ("slow", slow_node[1]),
             ("dead", f"unix:{tmp_path / 'dead.sock'}")]
    with Relay(peers, tcp_address="127.0.0.1:0", connect_timeout=0.5) as relay:
        with ObserverClient(relay.targets[0]) as c:
            started = time.monotonic()
            events = list(c.get_flows(FlowsQuery(number=ALL)))
            assert time.monotonic() - started < 3  # the dead node costs at most connect_timeout
    assert flow_ids(events) == ["a@1", "slow@2", "b@3", "a@4", "slow@5", "b@6", "a@7",
                                "slow@8", "b@9", "a@10"]
    st = statuses(events)
    assert st["dead"][0] == "NODE_UNAVAILABLE" and "dead.sock" in st["dead"][1]
    assert {st[n][0] for n in ("a", "b", "slow")} == {"NODE_CONNECTED"}
    # node notices come first, so a reader learns about missing nodes before the flows
    assert all(isinstance(e, NodeStatus) for e in events[:4])


def test_number_applies_across_nodes(start_node: NodeFactory) -> None:
    a = start_node("a", ring_with("a", [1, 4, 7, 10]))
    b = start_node("b", ring_with("b", [3, 6, 9, 12]))
    with Relay([("a", a.targets[0]), ("b", b.targets[0])], tcp_address="127.0.0.1:0") as relay:
        with ObserverClient(relay.targets[0]) as c:
            assert flow_ids(list(c.get_flows(FlowsQuery(number=3)))) == ["b@9", "a@10", "b@12"]
            assert flow_ids(list(c.get_flows(FlowsQuery(number=3, first=True)))) == [
                "a@1", "b@3", "a@4"]


def test_a_node_slower_than_the_deadline_is_reported_not_waited_for(
    start_node: NodeFactory, slow_node: tuple[FlowRing, str], tmp_path: Path
) -> None:
    a = start_node("a", ring_with("a", [1]))
    peers = [("a", a.targets[0]), ("slow", slow_node[1])]
    with Relay(peers, tcp_address=None, unix_socket=tmp_path / "relay.sock",
               request_timeout=0.08) as relay:
        with ObserverClient(relay.targets[0]) as c:
            events = list(c.get_flows(FlowsQuery(number=ALL)))
    st = statuses(events)
    assert st["slow"][0] == "NODE_ERROR" and "timed out" in st["slow"][1]
    assert "a@1" in flow_ids(events)


def test_follow_merges_within_the_reorder_window(
    start_node: NodeFactory, slow_node: tuple[FlowRing, str]
) -> None:
    ring_a = FlowRing(1000)
    a = start_node("a", ring_a)
    ring_slow = slow_node[0]
    with Relay([("a", a.targets[0]), ("slow", slow_node[1])], tcp_address="127.0.0.1:0",
               reorder_window=0.5) as relay:
        f = Follower(ObserverClient(relay.targets[0]), FlowsQuery(follow=True))
        try:
            f.until(2, kind=NodeStatus)
            time.sleep(0.2)
            now = time.time_ns()
            # The slow node delivers each of its flows 50 ms late; times interleave.
            ring_slow.put_many(syn(now + i * 1000, uuid=f"slow-{i}") for i in (1, 3, 5))
            ring_a.put_many(syn(now + i * 1000, uuid=f"a-{i}") for i in (2, 4, 6))
            got = f.until(6, kind=Flow)
        finally:
            f.stop()
    assert flow_ids(got) == ["slow-1", "a-2", "slow-3", "a-4", "slow-5", "a-6"]


def test_relay_status_and_nodes(start_node: NodeFactory, tmp_path: Path) -> None:
    a = start_node("a", ring_with("a", [1, 2]))
    b = start_node("b", ring_with("b", [3]))
    peers = [("a", a.targets[0]), ("b", b.targets[0]), ("dead", str(tmp_path / "dead.sock"))]
    with Relay(peers, tcp_address="127.0.0.1:0", status_timeout=0.5) as relay:
        with ObserverClient(relay.targets[0]) as c:
            s = c.server_status()
            nodes = {n.name: n for n in c.get_nodes()}
    assert (s.num_flows, s.max_flows, s.seen_flows) == (3, 2000, 3)
    assert (s.num_connected_nodes, s.num_unavailable_nodes) == (2, 1)
    assert s.unavailable_nodes == ("dead",)
    assert nodes["a"].state == "NODE_CONNECTED" and nodes["a"].num_flows == 2
    assert nodes["dead"].state == "NODE_UNAVAILABLE"
    assert nodes["dead"].address == f"unix:{tmp_path / 'dead.sock'}"
