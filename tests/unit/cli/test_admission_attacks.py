"""Attacker review of issue 9, item 8: admission is the API server's, not a back door.
Each test tries to plant datapath-driving state through ``tulle apply`` another way than
the one the first fix closed (a Gateway's or Pod's ``status``)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath.desired import waypoint_address
from agent.model.convert import from_dict
from agent.model.node import Node
from lab.ipam import allocate_cluster_ip
from lab.seed import DEFAULT_POOL, GATEWAY_CLASS, node_object
from lab.store import Store
from lab.topology import plan_lab
from tests.unit.lab.gateway_address import address_gateways

ATTACKER = "10.244.1.126"  # a pod on node1: the last host of 10.244.1.64/26


def _seed_node(run) -> dict[str, Any]:
    """The lab's own Node object, written the way ``lab up`` seeds it (not through apply)."""
    node = node_object(plan_lab("t", 1).nodes[0])
    with Store(run.store) as store:
        store.apply_many([node])
    return node


def _stored_node(run, name: str) -> Node:
    with Store(run.store) as store:
        [obj] = [o for o in store.list("Node")[0] if o["metadata"]["name"] == name]
    node = from_dict(obj)
    assert isinstance(node, Node)
    return node


def _user_node(node: dict[str, Any], annotations: dict[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": node["metadata"]["name"]}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": node["spec"]}


def test_apply_cannot_move_a_nodes_waypoint_by_moving_its_pod_cidr(run) -> None:
    """The node's waypoint address is the last host of its pod CIDR: it decides where
    every L7 connection on the node goes and which address carries waypoint identity. A
    user's apply must not move it (to a CIDR whose last host is the attacker's)."""
    seeded = _seed_node(run)
    name = seeded["metadata"]["name"]
    before = waypoint_address(_stored_node(run, name))
    assert before is not None
    forged = _user_node(seeded, None)
    forged["spec"] = {"podCIDR": "10.244.1.64/26", "podCIDRs": ["10.244.1.64/26"]}
    assert waypoint_address(from_dict(forged)) == ipaddress.ip_address(ATTACKER)
    result = run("apply", "-f", "-", input=yaml.safe_dump(forged))
    assert result.exit_code != 0 and "immutable" in result.output
    assert waypoint_address(_stored_node(run, name)) == before


def test_applying_a_node_without_its_pod_cidr_keeps_its_waypoint(run) -> None:
    """kubectl-style apply of a Node (a label edit, say) must not drop the pod CIDR
    either: the node would lose its waypoint, every L7 Service on it plain L4."""
    seeded = _seed_node(run)
    name = seeded["metadata"]["name"]
    before = waypoint_address(_stored_node(run, name))
    edited = _user_node(seeded, {"team-note": "x"})
    edited["spec"] = {}
    edited["metadata"]["labels"] = {"team": "a"}
    result = run("apply", "-f", "-", input=yaml.safe_dump(edited))
    assert result.exit_code == 0, result.output
    node = _stored_node(run, name)
    assert waypoint_address(node) == before
    assert node.metadata.labels.get("team") == "a"


# --- pod network namespaces: one per (namespace, pod), whatever the names -------------

# A small alphabet so that different (namespace, pod) pairs often join to the same text.
_LABEL = st.from_regex(r"[ab]([-ab]{0,3}[ab])?", fullmatch=True)
_SUBDOMAIN = st.from_regex(r"[ab]([-.ab]{0,3}[ab])?", fullmatch=True)


def test_pods_in_different_namespaces_never_share_a_network_namespace() -> None:
    """Namespace "a-b" pod "c" and namespace "a" pod "b-c" were both "…-pod-a-b-c": a
    tenant could name a pod so that the kubelet set up (or tore down) another
    namespace's pod netns."""
    plan = plan_lab("t", 1)
    assert plan.pod_netns("a-b", "c") != plan.pod_netns("a", "b-c")


@settings(max_examples=200, deadline=None)
@given(_LABEL, _SUBDOMAIN)
def test_no_other_split_of_a_pods_names_shares_its_network_namespace(ns: str, pod: str) -> None:
    """Every other (namespace, pod) pair spelled with the same characters gets its own."""
    plan = plan_lab("t", 1)
    joined = f"{ns}-{pod}"
    for cut in range(1, len(joined) - 1):
        other = (joined[:cut], joined[cut + 1 :])
        if joined[cut] == "-" and other != (ns, pod) and "." not in other[0]:
            assert plan.pod_netns(*other) != plan.pod_netns(ns, pod)


# --- a Service cannot take a Gateway's address ----------------------------------------

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "edge", "namespace": "shop"},
    "spec": {
        "gatewayClassName": "tulle",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
    },
}


def _service(ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec,
    }


def _gateway_address(run) -> str:
    with Store(run.store) as store:
        address_gateways(store)  # its Service, then its address through it
        gateway = store.get("Gateway", "shop", "edge")
    assert gateway is not None
    return str(gateway["status"]["addresses"][0]["value"])


def test_a_service_cannot_claim_a_gateways_address_as_its_cluster_ip(run) -> None:
    """Gateway addresses come from the LoadBalancer pool, outside the service range; a
    Service given the same address would share the VIP with the Gateway's listeners (its
    backends on the Gateway's ports, its routes in front of the Gateway's traffic)."""
    docs = [NAMESPACE, GATEWAY_CLASS, DEFAULT_POOL, GATEWAY]
    assert run("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    address = _gateway_address(run)
    result = run("apply", "-f", "-", input=yaml.safe_dump(_service(address)))
    assert result.exit_code != 0
    assert "not in the service range" in result.output and address in result.output
    with Store(run.store) as store:
        assert store.get("Service", "shop", "web") is None


def test_an_allocated_cluster_ip_never_lands_on_a_gateways_address(run) -> None:
    assert run("apply", "-f", "-", input=yaml.safe_dump_all([NAMESPACE, GATEWAY_CLASS, GATEWAY]))
    # The controller assigned the Gateway the very address the Service would hash to.
    preferred = str(allocate_cluster_ip(("shop", "web"), set()))
    with Store(run.store) as store:
        addresses = [{"type": "IPAddress", "value": preferred}]
        store.update_status("Gateway", "shop", "edge", {"addresses": addresses})
    result = run("apply", "-f", "-", input=yaml.safe_dump(_service()))
    assert result.exit_code == 0, result.output
    with Store(run.store) as store:
        service = store.get("Service", "shop", "web")
    assert service is not None and service["spec"]["clusterIP"] != preferred


# --- YAML in other hostile shapes: a clear error naming the line, never a traceback ---

HOSTILE_YAML = {
    "alias as a mapping key": "kind: Namespace\na: &a [1, 2]\n? *a\n: x\n",
    "sequence as a mapping key": "kind: Namespace\n? [1, 2]\n: x\n",
    "mapping as a mapping key": "kind: Namespace\n? {a: 1}\n: x\n",
    "100000-digit integer": "kind: Namespace\nmetadata: {name: " + "9" * 100_000 + "}\n",
    "100000-digit integer in JSON": '{"kind": "Namespace", "n": ' + "9" * 100_000 + "}",
}


@pytest.mark.parametrize("text", HOSTILE_YAML.values(), ids=HOSTILE_YAML.keys())
def test_hostile_yaml_shapes_get_a_clear_error_naming_the_source(run, text: str) -> None:
    result = run("apply", "-f", "-", input=text)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a usage error, not a traceback
    assert "<stdin>:" in result.output


# --- Node pod CIDRs: the datapath gives the first address host / remote-node identity ---


def test_apply_cannot_create_a_node_whose_pod_cidr_claims_node_identity(run) -> None:
    """A Node's podCIDR makes its first address a node address: host identity on that
    node (exempt from ingress policy, as kubelet probes are) or remote-node elsewhere. A
    Node moved to 93.184.216.0/24 would let 93.184.216.1 into every pod on it past
    ingress policy. Nodes are registered by the lab."""
    _seed_node(run)
    rogue = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "rogue"},
        "spec": {"podCIDR": "93.184.216.0/24"},
    }
    result = run("apply", "-f", "-", input=yaml.safe_dump(rogue))
    assert result.exit_code != 0 and "registered by the lab" in result.output
    with Store(run.store) as store:
        assert store.get("Node", "", "rogue") is None


def test_apply_cannot_change_a_nodes_pod_cidr_and_keeps_it_when_omitted(run) -> None:
    seeded = _seed_node(run)
    name = seeded["metadata"]["name"]
    moved = _user_node(seeded, None)
    moved["spec"] = {"podCIDR": "93.184.216.0/24", "podCIDRs": ["93.184.216.0/24"]}
    result = run("apply", "-f", "-", input=yaml.safe_dump(moved))
    assert result.exit_code != 0 and "immutable" in result.output
    labelled = _user_node(seeded, None)
    labelled["spec"] = {}
    labelled["metadata"]["labels"] = {"zone": "a"}
    result = run("apply", "-f", "-", input=yaml.safe_dump(labelled))
    assert result.exit_code == 0, result.output
    node = _stored_node(run, name)
    assert node.spec.pod_cidr == seeded["spec"]["podCIDR"]
    assert node.metadata.labels.get("zone") == "a"
