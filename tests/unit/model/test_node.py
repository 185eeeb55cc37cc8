import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.kinds import resolve_kind
from agent.model.node import Node

NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "node1", "labels": {"kubernetes.io/hostname": "node1"}},
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
    "status": {"addresses": [{"type": "InternalIP", "address": "10.240.0.11"}]},
}


def test_node_round_trips_and_is_cluster_scoped():
    node = from_dict(NODE)
    assert isinstance(node, Node)
    assert node.metadata.namespace == ""
    assert node.spec.pod_cidr == "10.244.1.0/24"
    assert node.status.address() == "10.240.0.11"
    assert to_dict(node) == NODE
    assert resolve_kind("no").kind == "Node" and not resolve_kind("nodes").namespaced


def test_bad_pod_cidr_names_the_field():
    bad = {**NODE, "spec": {"podCIDR": "10.244.1.0/33"}}
    with pytest.raises(ConversionError) as err:
        from_dict(bad)
    assert str(err.value) == "Node node1: spec.podCIDR: invalid CIDR '10.244.1.0/33'"
