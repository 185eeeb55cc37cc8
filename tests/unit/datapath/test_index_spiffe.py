"""The agent's endpoint index names each pod by its ServiceAccount's SPIFFE ID, in the
agent's trust domain: the datapath's and the waypoint's flows are enriched from it."""

from __future__ import annotations

from typing import Any

from agent.datapath.desired import desired_datapath, view_of
from agent.datapath.flow_index import endpoint_index
from agent.flows.enrich import enrich
from agent.flows.flow import IP, TCP, Flow
from agent.model.convert import from_dict


def pod(name: str, ip: str, **spec: Any) -> Any:
    return from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": name, "labels": {"app": name}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}], **spec},
        "status": {"podIP": ip, "phase": "Running"}})


PODS = [pod("web", "10.244.1.7", serviceAccountName="web-sa"),
        pod("cart", "10.244.1.8"),
        pod("old", "10.244.1.9", serviceAccount="legacy")]


def test_pods_get_their_service_account_s_id_in_the_agent_s_trust_domain() -> None:
    view = view_of(PODS)
    index = endpoint_index(view, desired_datapath(view, "n1"), "n1", "corp.example")
    ids = {ip: index.endpoint(ip).spiffe_id for ip in ("10.244.1.7", "10.244.1.8",
                                                       "10.244.1.9", "1.1.1.1")}
    assert ids == {
        "10.244.1.7": "spiffe://corp.example/ns/shop/sa/web-sa",
        "10.244.1.8": "spiffe://corp.example/ns/shop/sa/default",
        "10.244.1.9": "spiffe://corp.example/ns/shop/sa/legacy",
        "1.1.1.1": "",
    }
    flow = enrich(Flow(ip=IP("10.244.1.8", "10.244.1.7"), l4=TCP(40000, 80)), index)
    assert flow.source is not None and flow.destination is not None
    assert (flow.source.spiffe_id, flow.destination.spiffe_id) == (
        "spiffe://corp.example/ns/shop/sa/default", "spiffe://corp.example/ns/shop/sa/web-sa")


def test_the_default_trust_domain_is_cluster_local() -> None:
    view = view_of(PODS[:1])
    index = endpoint_index(view, desired_datapath(view, "n1"), "n1")
    assert index.endpoint("10.244.1.7").spiffe_id == "spiffe://cluster.local/ns/shop/sa/web-sa"
