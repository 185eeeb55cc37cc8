"""One node's observer API over unix sockets and TCP."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.flows.filters import FlowFilter
from agent.flows.flow import Flow, LostEvent, LostEventSource
from agent.flows.store import FlowRing
from agent.observer.client import ObserverClient, ObserverRequestError, ObserverUnavailable
from agent.observer.convert import ALL, FlowsQuery
from tests.unit.flows.samples import T0, all_samples, syn
from tests.unit.observer.conftest import Follower, NodeFactory


def uuids(events: Sequence[object]) -> list[str]:
    return [e.uuid[-1] if e.uuid else "u" for e in events if isinstance(e, Flow)]


def test_get_flows_selection_and_filters(start_node: NodeFactory) -> None:
    ring = FlowRing(100)
    ring.put_many(all_samples())
    node = start_node("node-1", ring, tcp=True)
    unix, tcp = node.targets
    assert unix.startswith("unix:") and tcp.startswith("127.0.0.1:")
    for address in (unix, tcp):
        with ObserverClient(address, connect_timeout=2) as c:
            assert uuids(list(c.get_flows(FlowsQuery(number=2)))) == ["5", "u"]
    with ObserverClient(unix) as c:
        assert uuids(list(c.get_flows(FlowsQuery(number=2, first=True)))) == ["1", "2"]
        assert uuids(list(c.get_flows(FlowsQuery(number=ALL)))) == ["1", "2", "3", "4", "5", "u"]
        q = FlowsQuery(whitelist=(FlowFilter(verdict=("DROPPED",)), FlowFilter(protocol=("udp",))))
        assert uuids(list(c.get_flows(q))) == ["3", "u"]
        q = FlowsQuery(blacklist=(FlowFilter(protocol=("tcp",)),))
        assert uuids(list(c.get_flows(q))) == ["u"]
        q = FlowsQuery(since=T0 + 2_000_000, until=T0 + 3_000_000)
        assert uuids(list(c.get_flows(q))) == ["3", "4"]
        with pytest.raises(ObserverRequestError, match="invalid filter.*http status"):
            list(c.get_flows(FlowsQuery(whitelist=(FlowFilter(http_status_code=("9+",)),))))


def test_follow_streams_new_flows_and_lost_events(start_node: NodeFactory) -> None:
    ring = FlowRing(100)
    ring.put(syn(uuid="old"))
    node = start_node("node-1", ring)
    f = Follower(ObserverClient(node.targets[0]), FlowsQuery(follow=True))
    try:
        time.sleep(0.2)
        started = time.monotonic()
        ring.put(syn(uuid="new-1"))
        assert uuids(f.until(1)) == ["1"]  # "new-1"; history was not asked for
        assert time.monotonic() - started < 1.0
        ring.record_lost(LostEventSource.PERF_EVENT_RING_BUFFER, 12, cpu=0)
        ring.put(syn(uuid="new-2", verdict="DROPPED"))
        lost = f.until(1, kind=LostEvent)[0]
        assert isinstance(lost, LostEvent) and lost.num_events_lost == 12
        assert lost.node_name == "node-1"
        assert uuids(f.until(2, kind=Flow)) == ["1", "2"]
    finally:
        f.stop()


def test_follow_with_history_and_filter(start_node: NodeFactory) -> None:
    ring = FlowRing(100)
    ring.put_many(all_samples())
    node = start_node("node-1", ring)
    q = FlowsQuery(number=1, follow=True, whitelist=(FlowFilter(protocol=("http",)),))
    f = Follower(ObserverClient(node.targets[0]), q)
    try:
        assert uuids(f.until(1)) == ["5"]
        ring.put(syn(uuid="tcp-only"))  # filtered out
        ring.put_many(all_samples()[3:4])  # http request again
        assert uuids(f.until(2)) == ["5", "4"]
    finally:
        f.stop()


def test_status_and_nodes(start_node: NodeFactory) -> None:
    ring = FlowRing(10)
    ring.put_many(all_samples())
    ring.record_lost("OBSERVER_EVENTS_QUEUE", 4)
    node = start_node("node-1", ring)
    with ObserverClient(node.targets[0]) as c:
        s = c.server_status()
        assert (s.num_flows, s.max_flows, s.seen_flows) == (7, 10, 6)
        assert s.lost_events == {"OBSERVER_EVENTS_QUEUE": 4}
        assert s.num_connected_nodes == 1 and s.uptime_ns > 0 and s.version
        [n] = c.get_nodes()
        assert n.name == "node-1" and n.state == "NODE_CONNECTED" and n.max_flows == 10


def test_nothing_listening_is_reported_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ObserverUnavailable, match=r"nope\.sock"):
        ObserverClient(str(tmp_path / "nope.sock"), connect_timeout=0.3).server_status()
    assert time.monotonic() - started < 2


def test_stop_removes_socket_and_ends_follow_streams(start_node: NodeFactory) -> None:
    node = start_node("node-x")
    sock = node.unix_socket
    assert sock is not None and Path(sock).is_socket()
    f = Follower(ObserverClient(node.targets[0]), FlowsQuery(follow=True))
    time.sleep(0.2)
    node.stop(grace=0.5)
    f._thread.join(5)
    assert not f._thread.is_alive()
    assert not Path(sock).exists()
