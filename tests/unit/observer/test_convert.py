"""Proto <-> Python: filters, queries, responses and status survive the wire."""

from __future__ import annotations

from agent.flows.filters import EventTypeFilter, FlowFilter
from agent.flows.flow import LostEvent, LostEventSource, TCPFlags
from agent.observer.convert import (
    ALL,
    FlowsQuery,
    NodeInfo,
    NodeStatus,
    ServerStatus,
    event_from_response,
    filter_from_proto,
    filter_to_proto,
    flow_response,
    lost_response,
    node_from_proto,
    node_to_proto,
    query_from_proto,
    query_to_proto,
    status_from_proto,
    status_response,
    status_to_proto,
)
from tests.unit.flows.samples import T0, http_response, syn

FULL = FlowFilter(
    uuid=("u1",), source_ip=("10.0.0.0/8",), source_pod=("shop/web",),
    source_label=("app=web",), source_service=("shop/echo",),
    source_workload=(("Deployment", "web"),), source_identity=(12345,),
    destination_ip=("1.1.1.1",), destination_pod=("data/",), destination_label=("!x",),
    destination_service=("data/db",), destination_workload=(("", "db"),),
    destination_identity=(2,), source_port=("1",), destination_port=("80", "443"),
    protocol=("tcp",), tcp_flags=(TCPFlags(SYN=True, ACK=True), TCPFlags(RST=True)),
    verdict=("DROPPED",), drop_reason_desc=("POLICY_DENIED",),
    event_type=(EventTypeFilter(4, 0), EventTypeFilter(129)), http_status_code=("5+",),
    http_method=("GET",), http_path=("^/api",), node_name=("node-*",),
    traffic_direction=("INGRESS",), reply=(False,), ip_version=("IPv4",),
    source_spiffe_id=("spiffe://cluster.local/ns/shop/sa/web",),
    destination_spiffe_id=("spiffe://cluster.local/ns/data/sa/default",),
)


def test_filter_round_trip_keeps_every_field() -> None:
    assert filter_from_proto(filter_to_proto(FULL)) == FULL
    assert filter_from_proto(filter_to_proto(FlowFilter())) == FlowFilter()


def test_query_round_trip() -> None:
    q = FlowsQuery(number=ALL, first=False, follow=True, whitelist=(FULL,),
                   blacklist=(FlowFilter(verdict=("FORWARDED",)),), since=T0, until=T0 + 5)
    assert query_from_proto(query_to_proto(q)) == q
    assert query_from_proto(query_to_proto(FlowsQuery())) == FlowsQuery()


def test_responses_decode_to_events() -> None:
    f = http_response()
    resp = flow_response(f, "ignored-node")
    assert resp.node_name == "node-1" and resp.time.ToNanoseconds() == f.time
    back = event_from_response(resp)
    assert back is not None and back.uuid == f.uuid  # type: ignore[union-attr]
    bare = syn(node_name="")
    ev = event_from_response(flow_response(bare, "node-9"))
    assert ev is not None and ev.node_name == "node-9"  # type: ignore[union-attr]

    lost = LostEvent(LostEventSource.PERF_EVENT_RING_BUFFER, 9, cpu=3, time=T0, node_name="n")
    assert event_from_response(lost_response(lost, "x")) == lost
    st = NodeStatus("NODE_UNAVAILABLE", ("a", "b"), "down", T0, "relay")
    assert event_from_response(status_response(st)) == st


def test_status_and_nodes_round_trip() -> None:
    s = ServerStatus(1, 2, 3, 4, 5.5, "v", 6, 0, ("n3",), {"PERF_EVENT_RING_BUFFER": 7})
    assert status_from_proto(status_to_proto(s)) == s
    bare = ServerStatus(1, 2, 3, 4, 0.0)
    assert status_from_proto(status_to_proto(bare)) == bare
    n = NodeInfo("n1", "NODE_CONNECTED", "unix:/x", "v", 1, 2, 3, 4, 5.0)
    assert node_from_proto(node_to_proto(n)) == n
