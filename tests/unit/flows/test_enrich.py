"""Enrichment fills pod, labels, workload, identity, service and node from addresses."""

from __future__ import annotations

import pytest

from agent.flows.enrich import EndpointIndex, enrich, pod_labels
from agent.flows.flow import IP, TCP, Endpoint, Flow, Service, Workload
from identity.spiffe import SpiffeIdError

INDEX = EndpointIndex.build(
    pods=[
        {"ip": "10.1.0.5", "namespace": "shop", "name": "web-1", "labels": {"app": "web"},
         "workload": {"kind": "Deployment", "name": "web"}, "identity": 12345, "node": "n1",
         "id": 7, "service_account": "web"},
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
        spiffe_id="spiffe://cluster.local/ns/shop/sa/web",
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


# -- SPIFFE IDs ------------------------------------------------------------------------------


def test_a_pod_with_a_service_account_gets_its_spiffe_id() -> None:
    f = enrich(tcp("10.1.0.5", "10.1.1.7"), INDEX)
    assert f.source is not None and f.source.spiffe_id == "spiffe://cluster.local/ns/shop/sa/web"


def test_a_pod_without_one_runs_as_default() -> None:
    f = enrich(tcp("10.1.0.5", "fd00::7"), INDEX)
    assert f.destination is not None
    assert f.destination.spiffe_id == "spiffe://cluster.local/ns/shop/sa/default"


@pytest.mark.parametrize("address", ["8.8.8.8", "10.96.0.10", "172.18.0.2", "172.18.0.3"])
def test_world_service_host_and_node_addresses_have_no_spiffe_id(address: str) -> None:
    f = enrich(tcp(address, "10.1.0.5"), INDEX)
    assert f.source is not None and f.source.spiffe_id == ""
    assert f.destination is not None and f.destination.spiffe_id != ""


def test_the_trust_domain_is_the_index_s() -> None:
    index = EndpointIndex.build(
        pods=[{"ip": "10.1.0.9", "namespace": "pay", "name": "api-0", "service_account": "api"}],
        trust_domain="prod.example.org",
    )
    f = enrich(tcp("10.1.0.9", "8.8.8.8"), index)
    assert f.source is not None
    assert f.source.spiffe_id == "spiffe://prod.example.org/ns/pay/sa/api"


@pytest.mark.parametrize("bad", ["", "Cluster.Local", "td:8443", "a/b"])
def test_a_bad_trust_domain_is_refused_even_with_no_pods(bad: str) -> None:
    with pytest.raises(SpiffeIdError, match="trust domain"):
        EndpointIndex.build(trust_domain=bad)


def test_a_producer_s_pod_endpoint_gets_the_same_pod_s_id_only() -> None:
    same = Endpoint(namespace="shop", pod_name="web-1")
    f = enrich(tcp("10.1.0.5", "10.1.1.7", source=same), INDEX)
    assert f.source == Endpoint(namespace="shop", pod_name="web-1",
                                spiffe_id="spiffe://cluster.local/ns/shop/sa/web")
    other = Endpoint(namespace="shop", pod_name="someone-else")
    g = enrich(tcp("10.1.0.5", "10.1.1.7", source=other), INDEX)
    assert g.source is other
