"""Enrichment fills pod, labels, workload, identity, service and node from addresses."""

from __future__ import annotations

from agent.flows.enrich import EndpointIndex, enrich, pod_labels
from agent.flows.flow import IP, TCP, Endpoint, Flow, Service, Workload

INDEX = EndpointIndex.build(
    pods=[
        {"ip": "10.1.0.5", "namespace": "shop", "name": "web-1", "labels": {"app": "web"},
         "workload": {"kind": "Deployment", "name": "web"}, "identity": 12345, "node": "n1",
         "id": 7},
        {"ips": ["10.1.1.7", "fd00::7"], "namespace": "shop", "name": "echo-2",
         "labels": {"app": "echo"}},
    ],
    services=[{"cluster_ip": "10.96.0.10", "port": 80, "namespace": "shop", "name": "echo"}],
    nodes=[{"ip": "172.18.0.2", "name": "n1"}, {"ip": "172.18.0.3", "name": "n2"}],
    local_node="n1",
)


def tcp(src: str, dst: str, sport: int = 40000, dport: int = 80, **kw: object) -> Flow:
    return Flow(ip=IP(src, dst), l4=TCP(sport, dport), **kw)  # type: ignore[arg-type]


def test_pods_and_services() -> None:
    f = enrich(tcp("10.1.0.5", "10.96.0.10"), INDEX)
    assert f.source == Endpoint(
        id=7, identity=12345, namespace="shop",
        labels=("k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"),
        pod_name="web-1", workloads=(Workload("web", "Deployment"),),
    )
    assert f.destination_service == Service("echo", "shop")
    assert f.destination is not None and f.destination.identity == 2  # cluster IP: world
    assert f.node_name == "n1"

    g = enrich(tcp("fd00::7", "10.1.0.5", 80, 40000), INDEX, node_name="n2")
    assert g.source is not None and g.source.pod_name == "echo-2"
    assert g.source.identity >= 256  # derived from the labels, stable
    assert g.source == enrich(tcp("10.1.1.7", "1.1.1.1"), INDEX).source
    assert g.node_name == "n2"


def test_nodes_world_and_reply_from_service() -> None:
    f = enrich(tcp("172.18.0.2", "172.18.0.3"), INDEX)
    assert f.source == Endpoint(identity=1, labels=("reserved:host",))
    assert f.destination == Endpoint(identity=6, labels=("reserved:remote-node",))
    r = enrich(tcp("10.96.0.10", "10.1.0.5", 80, 40000), INDEX)
    assert r.source_service == Service("echo", "shop")
    assert enrich(tcp("8.8.8.8", "10.1.0.5"), INDEX).source == Endpoint(
        identity=2, labels=("reserved:world",)
    )


def test_producer_values_win_and_no_change_returns_same_object() -> None:
    mine = Endpoint(identity=999, namespace="x", pod_name="custom")
    f = enrich(tcp("10.1.0.5", "10.1.1.7", source=mine, node_name="n9"), INDEX)
    assert f.source is mine and f.node_name == "n9"
    partial = Endpoint(identity=4242)
    g = enrich(tcp("10.1.0.5", "10.1.1.7", source=partial), INDEX)
    assert g.source is not None and g.source.pod_name == "web-1" and g.source.identity == 4242
    bare = Flow(node_name="n1")
    assert enrich(bare, INDEX) is bare
    assert pod_labels("ns", {"b": "2", "a": "1"}) == (
        "k8s:a=1", "k8s:b=2", "k8s:io.kubernetes.pod.namespace=ns"
    )
