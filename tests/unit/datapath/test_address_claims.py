"""Two pods claiming one address: the datapath holds one of them, the same one whatever order
the pods were listed in (an agent and its restart, or two agents, must agree on the
address's identity), and the clash is named."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address
from typing import Any

from agent.datapath.desired import desired_datapath, view_of
from agent.datapath.pod_endpoints import pod_endpoints
from agent.model.convert import from_dict

IP = "10.244.1.7"


def pod(namespace: str, name: str, ip: str, created: str, app: str, host: bool = False) -> Any:
    return from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"{namespace}-{name}",
                     "labels": {"app": app}, "creationTimestamp": created},
        "spec": {"nodeName": "n1", "hostNetwork": host, "containers": [{"name": "c"}]},
        "status": {"podIP": ip, "phase": "Running"}})


OLD = pod("shop", "old", IP, "2026-12-01T10:00:00Z", "cart")
NEW = pod("shop", "new", IP, "2026-12-01T10:05:00Z", "billing")
OTHER = pod("shop", "other", "10.244.1.8", "2026-12-01T09:00:00Z", "cart")


def test_the_newest_claimant_holds_the_address_in_any_order() -> None:
    results = set()
    for order in itertools.permutations([OLD, NEW, OTHER]):
        desired = desired_datapath(view_of(list(order)), "n1")
        local = desired.endpoints[IPv4Address(IP)]
        results.add((local.namespace, local.name, local.identity,
                     desired.ipcache[IPv4Address(IP)]))
    assert len(results) == 1, results
    (namespace, name, identity, cached), = results
    assert (namespace, name) == ("shop", "new")
    assert identity == cached


def test_a_clash_is_named_and_the_other_pods_keep_their_addresses() -> None:
    found = pod_endpoints([OLD, OTHER, NEW])
    assert sorted(ep.name for _, ep in found.pairs) == ["new", "other"]
    assert any(IP in note and "shop/old" in note and "shop/new" in note
               for note in found.collisions), found.collisions


def test_same_creation_time_falls_back_to_namespace_and_name() -> None:
    a = pod("a", "web", IP, "2026-12-01T10:00:00Z", "x")
    b = pod("b", "web", IP, "2026-12-01T10:00:00Z", "y")
    for order in ([a, b], [b, a]):
        (only,) = [ep for _, ep in pod_endpoints(order).pairs]
        assert only.namespace == "a"


def test_host_network_pods_are_the_host_not_endpoints() -> None:
    node_ip = "10.240.0.11"
    agent = pod("sys", "agent", node_ip, "2026-12-01T10:00:00Z", "agent", host=True)
    waypoint = pod("sys", "waypoint", node_ip, "2026-12-01T10:01:00Z", "waypoint", host=True)
    found = pod_endpoints([agent, waypoint, OTHER])
    assert [ep.name for _, ep in found.pairs] == ["other"] and found.collisions == ()
