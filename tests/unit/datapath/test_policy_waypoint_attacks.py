"""Attacks on the waypoint's policy check (issue 9 review): what a pod could ask the
waypoint to dial that it could not reach directly."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from agent.cli.main import cli
from agent.datapath.desired import ClusterView, desired_datapath, l7_keys, view_of
from agent.datapath.identity import WAYPOINT
from agent.datapath.policy_waypoint import connection_policy
from agent.model.convert import from_dict
from agent.model.core import Service
from agent.model.gateway import Gateway
from gatewayapi import RouteCompiler
from l7proxy.parents import gateway_parents
from lab.seed import DEFAULT_POOL, GATEWAY_CLASS
from lab.store import Store
from lab.topology import SERVICE_CIDR

from ..cli.labapi import lab_api
from ..lab.gateway_address import address_gateways
from .test_desired_waypoint import node
from .test_policy_waypoint import NAMESPACES, PODS

B = ("10.244.2.6", 40000)


@pytest.mark.parametrize("backend", ["127.0.0.1", "127.1.2.3", "0.0.0.0", "169.254.20.10",
                                     "224.0.0.1"])
def test_the_nodes_own_special_addresses_are_never_a_backend(backend: str) -> None:
    """No policy at all, yet the waypoint (inside the node) must not dial the node's
    loopback listeners (metrics, observer) or link-local services for a pod."""
    judge = connection_policy(PODS, NAMESPACES, [])
    assert judge.allows(B, ("10.244.1.5", 8080))  # control: an ordinary pod is allowed
    assert not judge.allows(B, (backend, 9966))


# --- a Gateway address on another namespace's Service ---------------------------------

NS_ATT = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "att"}}
NS_SHOP = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
TRAP = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "trap", "namespace": "att"},
    "spec": {"gatewayClassName": "tulle",
             "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
}


def _web(name: str = "web", cluster_ip: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec}


def _trap_address(store_path: Path) -> str:
    assert _apply(store_path, NS_ATT, NS_SHOP, GATEWAY_CLASS, DEFAULT_POOL, TRAP).exit_code == 0
    with Store(store_path) as store:
        address_gateways(store)  # its Service, then its address through it
        gateway = next(o for o in store.list()[0] if o["kind"] == "Gateway")
    return str(gateway["status"]["addresses"][0]["value"])


def _apply(store_path: Path, *objs: dict[str, Any]) -> Any:
    """`tulle apply` through a lab API server over the store (the CLI's only way in)."""
    with lab_api(store_path) as api:
        return CliRunner().invoke(cli, ["--kubeconfig", str(api.kubeconfig), "apply", "-f", "-"],
                                  input=yaml.safe_dump_all(objs))


def test_a_service_cannot_be_given_a_gateways_address(tmp_path: Path) -> None:
    """Another namespace's Gateway holds address A: a Service asking for A would share the
    VIP, and the Gateway's listener would capture the Service's traffic for every client.
    A is a LoadBalancer pool address, never in the service range, so no ClusterIP (asked
    for or hashed onto by grinding names) can be A."""
    store_path = tmp_path / "store.db"
    address = _trap_address(store_path)
    assert ipaddress.ip_address(address) not in SERVICE_CIDR
    result = _apply(store_path, _web(cluster_ip=address))
    assert result.exit_code != 0
    assert f"spec.clusterIP: {address} is not in the service range" in result.output


def test_a_gateway_never_captures_a_service_that_shares_its_address() -> None:
    """Stored before the allocator knew better (or written by another API server): the
    Service keeps its address, the Gateway listener is not programmed on it, the waypoint
    never routes the Service's connections by the Gateway, and the conflict is reported."""
    gateway = from_dict({**TRAP, "status": {"addresses": [{"type": "IPAddress",
                                                              "value": "10.96.7.7"}]}})
    service = from_dict(_web(cluster_ip="10.96.7.7"))
    cls = from_dict(GATEWAY_CLASS)
    assert isinstance(gateway, Gateway) and isinstance(service, Service)
    needs = l7_keys(view_of([gateway, service, cls]), RouteCompiler())
    assert needs.every == frozenset()  # the Service stays plain L4 for every client
    assert any("att/trap" in e and "shop/web" in e for e in needs.errors), needs.errors
    assert gateway_parents([gateway], [service]) == {}
    desired = desired_datapath(view_of([gateway, service, cls]), "node1", l7=needs)
    assert any("att/trap" in e for e in desired.errors)


def test_a_client_the_waypoint_does_not_know_is_refused_even_without_policy() -> None:
    """A pod the waypoint's view does not have yet (its watch lags the agent's) or any
    more (deleted, its address not yet reused in this view): its egress policy cannot be
    judged, so nothing is admitted for it (the kernel likewise drops unknown senders)."""
    judge = connection_policy(PODS, NAMESPACES, [])
    assert judge.allows(B, ("10.244.1.5", 8080))
    assert not judge.allows(("10.244.2.99", 40000), ("10.244.1.5", 8080))


@pytest.mark.parametrize("claimed", ["10.244.2.254", "10.244.1.254"], ids=["remote", "own"])
def test_a_node_claiming_a_waypoint_address_does_not_strip_its_identity(claimed: str) -> None:
    """A Node object (listed after the real one) whose InternalIP is a waypoint's address
    made the ipcache call it a remote node: pods could then dial that waypoint directly and
    its forwarded traffic would meet the backends' ingress policy as a node's."""
    view = ClusterView(nodes=(node("n1", "10.244.1.0/24", "10.240.0.11"),
                              node("n2", "10.244.2.0/24", "10.240.0.12"),
                              node("n3", "", claimed)))
    desired = desired_datapath(view, "n1", waypoint=(IPv4Address("10.244.1.254"), 15001))
    assert desired.ipcache[IPv4Address(claimed)] == WAYPOINT
    assert any("Node n3" in e and claimed in e for e in desired.errors), desired.errors
