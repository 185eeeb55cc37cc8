"""Waypoint addresses in the desired datapath come from the agent's configuration and a rule
over Node.spec, never from anything a user can write on a Node (issue 9 item 8)."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from agent.datapath.desired import ClusterView, desired_datapath, waypoint_address
from agent.datapath.identity import HOST, REMOTE_NODE, WAYPOINT
from agent.model.convert import from_dict
from agent.model.node import Node


def node(name: str, cidr: str, ip: str, annotations: dict[str, str] | None = None) -> Node:
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"podCIDR": cidr} if cidr else {},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }
    obj = from_dict(doc)
    assert isinstance(obj, Node)
    return obj


OWN = (IPv4Address("10.244.1.254"), 15001)


def test_own_waypoint_from_config_and_others_by_the_pod_cidr_rule() -> None:
    view = ClusterView(nodes=(node("n1", "10.244.1.0/24", "10.240.0.11"),
                              node("n2", "10.244.2.0/24", "10.240.0.12")))
    desired = desired_datapath(view, "n1", waypoint=OWN)
    assert desired.waypoint == OWN
    assert desired.ipcache[IPv4Address("10.244.1.254")] == WAYPOINT
    assert desired.ipcache[IPv4Address("10.244.2.254")] == WAYPOINT
    assert desired.ipcache[IPv4Address("10.240.0.11")] == HOST
    assert desired.ipcache[IPv4Address("10.240.0.12")] == REMOTE_NODE


def test_without_configuration_this_node_has_no_waypoint() -> None:
    view = ClusterView(nodes=(node("n1", "10.244.1.0/24", "10.240.0.11"),))
    assert desired_datapath(view, "n1").waypoint is None


def test_annotating_a_node_changes_nothing() -> None:
    plain = ClusterView(nodes=(node("n1", "10.244.1.0/24", "10.240.0.11"),
                               node("n2", "10.244.2.0/24", "10.240.0.12")))
    annotated = ClusterView(nodes=(
        node("n1", "10.244.1.0/24", "10.240.0.11", {"tulle.io/waypoint": "10.244.1.7:80"}),
        node("n2", "10.244.2.0/24", "10.240.0.12", {"tulle.io/waypoint": "10.244.1.9:15001"})))
    for view in (plain, annotated):
        desired = desired_datapath(view, "n1", waypoint=OWN)
        assert desired.waypoint == OWN
        assert IPv4Address("10.244.1.7") not in desired.ipcache
        assert IPv4Address("10.244.1.9") not in desired.ipcache
    assert desired_datapath(plain, "n1", waypoint=OWN) == desired_datapath(
        annotated, "n1", waypoint=OWN)


def test_waypoint_address_rule() -> None:
    assert waypoint_address(node("n", "10.244.7.0/24", "10.0.0.1")) == IPv4Address("10.244.7.254")
    assert waypoint_address(node("n", "10.10.0.0/16", "10.0.0.1")) == IPv4Address("10.10.255.254")
    assert waypoint_address(node("n", "", "10.0.0.1")) is None
    assert waypoint_address(node("n", "10.244.7.0/31", "10.0.0.1")) is None


def test_a_waypoint_off_the_rule_is_reported() -> None:
    view = ClusterView(nodes=(node("n1", "10.244.1.0/24", "10.240.0.11"),))
    assert desired_datapath(view, "n1", waypoint=OWN).errors == ()
    odd = desired_datapath(view, "n1", waypoint=(IPv4Address("10.244.1.9"), 15001))
    assert odd.waypoint == (IPv4Address("10.244.1.9"), 15001)
    assert odd.errors and "10.244.1.254" in odd.errors[0]
