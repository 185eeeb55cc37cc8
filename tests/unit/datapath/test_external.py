"""NodePort and LoadBalancer entries in the service plan (agent.datapath.external): the node
address x nodePort and each load-balancer address, flagged for the uplink; Local lists only
this node's backends."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from agent.datapath.desired import desired_datapath, view_of
from agent.datapath.flags import LB_F_EXTERNAL, LB_F_LOCAL
from agent.datapath.maglev import maglev_table
from agent.datapath.planner import Change, Planner
from agent.datapath.services import (
    Backend,
    NodeSite,
    ServiceKey,
    plan_services,
)
from agent.model.convert import from_dict
from agent.model.core import Service
from agent.model.node import Node
from tests.unit.datapath.test_services import endpoint_slice, ep

NODE_IP = IPv4Address("172.30.0.2")
SITE = NodeSite(NODE_IP, IPv4Network("10.244.1.0/24"))
LOCAL_POD, REMOTE_POD = "10.244.1.5", "10.244.2.7"
CLUSTER_KEY = ServiceKey(IPv4Address("10.96.0.10"), 80, 6)
NODE_KEY = ServiceKey(NODE_IP, 30080, 6)
LB_KEY = ServiceKey(IPv4Address("192.0.2.50"), 80, 6)


def service(
    kind: str = "NodePort", policy: str | None = None, lb_ips: tuple[str, ...] = (), **port: Any
) -> Service:
    spec: dict[str, Any] = {
        "type": kind,
        "clusterIP": "10.96.0.10",
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, **port}],
    }
    if policy:
        spec["externalTrafficPolicy"] = policy
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec,
    }
    if lb_ips:
        body["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    obj = from_dict(body)
    assert isinstance(obj, Service)
    return obj


SLICE = endpoint_slice(ep(LOCAL_POD), ep(REMOTE_POD))


def test_nodeport_cluster_serves_node_address_with_every_backend() -> None:
    plan = plan_services([service()], [SLICE], site=SITE)
    cluster, node = plan.entries[CLUSTER_KEY], plan.entries[NODE_KEY]
    assert set(plan.entries) == {CLUSTER_KEY, NODE_KEY}
    assert cluster.flags == 0
    assert node.flags == LB_F_EXTERNAL
    assert list(node.backends) == list(cluster.backends)
    assert len(node.backends) == 2 and node.table == cluster.table
    assert (node.namespace, node.name, node.port_name) == ("shop", "web", "http")


def test_local_lists_only_this_nodes_backends_with_their_own_table() -> None:
    plan = plan_services([service(policy="Local")], [SLICE], site=SITE)
    node = plan.entries[NODE_KEY]
    assert node.flags == LB_F_EXTERNAL | LB_F_LOCAL
    assert list(node.backends) == [Backend(IPv4Address(LOCAL_POD), 8080)]
    assert list(node.table) == list(maglev_table([f"{LOCAL_POD}:8080"]))
    assert len(plan.entries[CLUSTER_KEY].backends) == 2  # the ClusterIP keeps them all


def test_local_without_a_local_backend_has_an_empty_entry() -> None:
    """The kernel then drops from outside with a reason; it never forwards elsewhere."""
    only_remote = endpoint_slice(ep(REMOTE_POD))
    plan = plan_services([service(policy="Local")], [only_remote], site=SITE)
    node = plan.entries[NODE_KEY]
    assert node.flags == LB_F_EXTERNAL | LB_F_LOCAL
    assert list(node.backends) == [] and len(node.table) == 0


def test_local_with_an_unknown_pod_cidr_has_no_local_backend() -> None:
    site = NodeSite(NODE_IP, None)
    plan = plan_services([service(policy="Local")], [SLICE], site=site)
    assert list(plan.entries[NODE_KEY].backends) == []


def test_load_balancer_serves_node_port_and_each_ingress_ip() -> None:
    svc = service("LoadBalancer", lb_ips=("192.0.2.50", "192.0.2.51"))
    plan = plan_services([svc], [SLICE], site=SITE)
    second = ServiceKey(IPv4Address("192.0.2.51"), 80, 6)
    assert set(plan.entries) == {CLUSTER_KEY, NODE_KEY, LB_KEY, second}
    for key in (NODE_KEY, LB_KEY, second):
        assert plan.entries[key].flags == LB_F_EXTERNAL
        assert len(plan.entries[key].backends) == 2


def test_load_balancer_ipv6_ingress_is_noted_not_served() -> None:
    svc = service("LoadBalancer", lb_ips=("2001:db8::5", "192.0.2.50"))
    plan = plan_services([svc], [SLICE], site=SITE)
    assert LB_KEY in plan.entries
    assert any("2001:db8::5" in e and "IPv6" in e for e in plan.errors)


def test_cluster_ip_services_and_unknown_sites_get_no_external_entries() -> None:
    cluster_ip = service("ClusterIP", nodePort=None)
    assert set(plan_services([cluster_ip], [SLICE], site=SITE).entries) == {CLUSTER_KEY}
    assert set(plan_services([service()], [SLICE]).entries) == {CLUSTER_KEY}
    no_address = plan_services([service()], [SLICE], site=NodeSite(None, SITE.pod_cidr))
    assert set(no_address.entries) == {CLUSTER_KEY}


def test_udp_port_gets_udp_node_entry() -> None:
    plan = plan_services([service(protocol="UDP")], [
        endpoint_slice(ep(LOCAL_POD), ports=[{"name": "http", "port": 8080, "protocol": "UDP"}])
    ], site=SITE)
    assert ServiceKey(NODE_IP, 30080, 17) in plan.entries


def test_two_services_on_one_node_port_first_wins_with_a_note() -> None:
    """The API server refuses a taken nodePort; a plan still decides if two arrive."""
    other = from_dict({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "zzz", "namespace": "shop"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.11",
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
    })
    assert isinstance(other, Service)
    plan = plan_services([other, service()], [SLICE], site=SITE)
    assert plan.entries[NODE_KEY].name == "web"
    assert any("zzz" in e and str(NODE_KEY) in e for e in plan.errors)


def node(name: str, ip: str, cidr: str) -> Node:
    obj = from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    })
    assert isinstance(obj, Node)
    return obj


def test_planner_follows_its_node_and_equals_the_reference() -> None:
    """The incremental planner learns the node's address from its Node object, replans the
    external Services when it changes, and equals desired_datapath throughout."""
    planner = Planner("n1")
    svc = service(policy="Local")
    objects: list[Any] = [svc, SLICE]
    planner.update([Change("Service", "shop", "web", svc),
                    Change("EndpointSlice", "shop", "web-abc", SLICE)])
    assert NODE_KEY not in planner.desired().services.entries  # no Node yet
    for n in (node("n2", "172.30.0.3", "10.244.2.0/24"), node("n1", str(NODE_IP), "10.244.1.0/24")):
        planner.update([Change("Node", "", n.metadata.name, n)])
        objects.append(n)
    entries = planner.desired().services.entries
    assert list(entries[NODE_KEY].backends) == [Backend(IPv4Address(LOCAL_POD), 8080)]
    assert planner.desired().services == desired_datapath(view_of(objects), "n1").services
    moved = node("n1", "172.30.0.9", "10.244.2.0/24")  # another address and pod CIDR
    planner.update([Change("Node", "", "n1", moved)])
    entries = planner.desired().services.entries
    assert NODE_KEY not in entries
    assert list(entries[ServiceKey(IPv4Address("172.30.0.9"), 30080, 6)].backends) == [
        Backend(IPv4Address(REMOTE_POD), 8080)
    ]
