import pytest

from lab.controllers.scheduler import schedule

from .factories import pod

NODES = ["node1", "node2"]


def test_unscheduled_pods_spread_across_nodes():
    pods = [pod(f"p{i}") for i in range(4)]
    bindings, unschedulable = schedule(pods, NODES)
    assert not unschedulable
    assert sorted(node for _, node in bindings) == ["node1", "node1", "node2", "node2"]


def test_existing_load_is_counted():
    pods = [pod("a", node="node1"), pod("b", node="node1"), pod("c")]
    bindings, _ = schedule(pods, NODES)
    assert [(p.metadata.name, n) for p, n in bindings] == [("c", "node2")]


def test_scheduled_pods_are_left_alone():
    bindings, unschedulable = schedule([pod("a", node="node2")], NODES)
    assert bindings == [] and unschedulable == []


@pytest.mark.parametrize(("selector", "expect"), [("node2", "node2"), ("node9", None)])
def test_hostname_node_selector(selector, expect):
    bindings, unschedulable = schedule(
        [pod("a", node_selector={"kubernetes.io/hostname": selector})], NODES
    )
    if expect:
        assert [n for _, n in bindings] == [expect]
    else:
        assert bindings == []
        assert "0/2 nodes match nodeSelector kubernetes.io/hostname=node9" in unschedulable[0][1]
