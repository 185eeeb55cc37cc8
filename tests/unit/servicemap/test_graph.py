"""build_graph against the golden minute: nodes, rates, error rates, p99, dedup."""

from __future__ import annotations

import dataclasses

import pytest

from agent.flows.flow import IP, TCP, Endpoint, Flow, Service, TCPFlags, TulleInfo, Verdict
from agent.servicemap.graph import build_graph, p99
from agent.servicemap.peers import (
    ADDRESS,
    RESERVED,
    SERVICE,
    WORKLOAD,
    endpoint_peer,
    pod_workload_name,
    workload_label,
)
from tests.unit.flows import samples
from tests.unit.servicemap import scenario
from tests.unit.servicemap.scenario import MS, SECOND, WINDOW_S, minute

T0 = 1_700_000_000 * SECOND


@pytest.fixture(scope="module")
def graph():  # type: ignore[no-untyped-def]
    return build_graph(minute(T0), WINDOW_S)


def test_nodes_are_workloads_services_and_collapsed_peers(graph) -> None:  # type: ignore[no-untyped-def]
    kinds = {n.id: n.kind for n in graph.nodes}
    assert kinds == {
        "frontend/web": WORKLOAD, "backend/catalog": WORKLOAD, "data/db": WORKLOAD,
        "svc:frontend/web": SERVICE, "svc:backend/catalog": SERVICE,
        "world": RESERVED, "host": RESERVED,  # two world addresses, one node
    }
    assert graph.node("frontend/web").detail == "Deployment"
    assert graph.node("data/db").detail == "Pod"  # no controller: named from "db-0"
    assert graph.namespaces == ["backend", "data", "frontend"]
    assert graph.flows == len(minute(T0))


def test_http_edges_through_a_service(graph) -> None:  # type: ignore[no-untyped-def]
    hop1 = graph.edge("frontend/web", "svc:backend/catalog")
    hop2 = graph.edge("svc:backend/catalog", "backend/catalog")
    for e in (hop1, hop2):
        assert e.is_l7 and e.unit == "req"
        assert e.requests == 300  # responses only: the 300 REQUEST flows are not counted
        assert e.rate == pytest.approx(5.0)
        assert e.request_errors == 3
        assert e.error_rate == pytest.approx(0.01)
        assert e.p99_ns == 29_700_000  # latencies 0.1..30ms: nearest rank 297 of 300
        assert e.connections == 20  # seen at egress and ingress, counted once
        assert "HTTP" in e.protocols and "TCP:8080" in e.protocols


def test_error_rate_and_p99_of_incoming_traffic(graph) -> None:  # type: ignore[no-untyped-def]
    e = graph.edge("world", "svc:frontend/web")
    assert e.requests == 120
    assert e.rate == pytest.approx(2.0)
    assert e.error_rate == pytest.approx(0.05)
    assert e.p99_latency_ns == 119 * MS  # ceil(0.99 * 120) = 119th of 1..120 ms
    assert graph.edge("svc:frontend/web", "frontend/web").requests == 120


def test_policy_drops_are_errors_with_reasons(graph) -> None:  # type: ignore[no-untyped-def]
    e = graph.edge("frontend/web", "data/db")
    assert not e.is_l7 and e.unit == "conn"
    assert e.connections == 4 and e.connection_errors == 4
    assert e.error_rate == 1.0
    assert e.drop_reasons == (("POLICY_DENIED", 4),)
    assert e.protocols == ("TCP:5432",)
    assert e.p99_ns is None


def test_l4_durations_and_bytes_from_closing_flows(graph) -> None:  # type: ignore[no-untyped-def]
    e = graph.edge("frontend/web", "world")
    assert e.connections == 30  # closing flows are not extra connections
    assert e.rate == pytest.approx(0.5)
    assert e.p99_duration_ns == 30 * MS
    assert e.bytes == 30 * 500
    assert e.protocols == ("UDP:53",)
    assert graph.edge("host", "frontend/web").connections == 60


def test_edges_are_sorted_and_complete(graph) -> None:  # type: ignore[no-untyped-def]
    pairs = [(e.source, e.destination) for e in graph.edges]
    assert pairs == sorted(pairs)
    assert len(pairs) == 7


def test_window_defaults_to_the_span_of_the_flows() -> None:
    flows = [samples.http_response(t=T0 + i * SECOND) for i in range(11)]
    g = build_graph(flows)
    assert g.window_s == pytest.approx(10.0)
    assert g.edges[0].rate == pytest.approx(11 / 10)
    assert build_graph([samples.http_response()]).window_s == 1.0  # never below a second


def test_only_the_larger_side_counts() -> None:
    """A drop seen at ingress and a forward seen at egress are one attempt, one error."""
    fwd = dataclasses.replace(samples.policy_drop(), verdict=Verdict.FORWARDED,
                              drop_reason=0, drop_reason_desc="",
                              traffic_direction="EGRESS")  # type: ignore[arg-type]
    g = build_graph([fwd, samples.policy_drop()], 10)
    (e,) = g.edges
    assert (e.connections, e.connection_errors, e.error_rate) == (1, 1, 1.0)


def test_service_vip_destination_stops_at_the_service() -> None:
    """Before DNAT the destination is the VIP, which enrichment calls "world"."""
    pre_dnat = dataclasses.replace(samples.syn(), destination=samples.WORLD,
                                   destination_service=Service("echo", "shop"))
    g = build_graph([pre_dnat], 1)
    assert [(e.source, e.destination) for e in g.edges] == [("shop/web", "svc:shop/echo")]


def test_replies_and_mid_connection_packets_are_not_connections() -> None:
    ack = dataclasses.replace(samples.syn(), l4=TCP(1, 2, TCPFlags(ACK=True, PSH=True)))
    g = build_graph([samples.synack(), ack], 1)
    assert g.edges == ()
    no_flags = dataclasses.replace(samples.syn(), l4=TCP(1, 2))  # datapath "new" event
    assert build_graph([no_flags], 1).edges[0].connections == 1


def test_denied_l7_request_is_an_error() -> None:
    denied = dataclasses.replace(samples.http_request(), verdict=Verdict.DROPPED,
                                 drop_reason_desc="POLICY_DENIED")
    g = build_graph([denied, samples.http_response()], 1)
    e = g.edge("shop/web", "svc:shop/echo")
    assert (e.requests, e.request_errors) == (2, 1)
    assert e.drop_reasons == (("POLICY_DENIED", 1),)


def test_unknown_endpoints_are_addresses() -> None:
    bare = Flow(time=T0, verdict=Verdict.FORWARDED, ip=IP("10.9.0.1", "10.9.0.2"),
                l4=TCP(1000, 80, TCPFlags(SYN=True)), is_reply=False,
                tulle=TulleInfo())
    g = build_graph([bare], 1)
    assert {n.id: n.kind for n in g.nodes} == {"10.9.0.1": ADDRESS, "10.9.0.2": ADDRESS}


@pytest.mark.parametrize(("pod", "workload"), [
    ("web-7d9c6b8f5d-x2kq9", "web"),  # Deployment: ReplicaSet hash + suffix
    ("web-3fa9c0d1e2-0b1c2", "web"),  # the lab's hex hash and suffix
    ("node-exporter-x7kq2", "node-exporter"),  # DaemonSet
    ("db-0", "db"),  # StatefulSet
    ("my-cache", "my-cache"),  # "cache" has vowels: not a generated suffix
    ("standalone", "standalone"),
])
def test_pod_workload_name(pod: str, workload: str) -> None:
    assert pod_workload_name(pod) == workload


def test_reserved_identities_collapse() -> None:
    assert endpoint_peer(Endpoint(identity=9), "1.2.3.4").id == "world"  # world-ipv4
    assert endpoint_peer(Endpoint(identity=6), "172.18.0.3").id == "remote-node"
    assert endpoint_peer(scenario.HOST, "10.1.0.1").id == "host"
    assert workload_label(None) == "unknown"
    assert workload_label(Endpoint(identity=70000)) == "unknown"
    assert workload_label(scenario.WEB) == "frontend/web"


def test_p99_nearest_rank() -> None:
    assert p99([]) is None
    assert p99([5]) == 5
    assert p99(list(range(1, 101))) == 99
    assert p99(list(range(1, 1001))) == 990
