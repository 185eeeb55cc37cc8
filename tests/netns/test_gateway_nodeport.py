"""Issue 13's fallback in a live lab: a Gateway no LoadBalancerIPPool can give an address
(it asks for one no pool holds) is still served to the external client at every node's
address on its Service's nodePorts, through the node's waypoint, with the Gateway's routes
and the backends' NetworkPolicy as at a pool address (agent/datapath/gateway_nodeports.py).
Its status says so: no address, Programmed False, the nodePorts in the message.

Attacker's view: the nodePort reaches only what the Gateway's routes match (anything else is
404), a NetworkPolicy that admits no outside client still refuses it (403), and neither the
listener's own port nor the TCP listener's nodePort is open on a node's address."""

from __future__ import annotations

from typing import Any

import pytest

from lab.topology import plan_lab

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, service, wait_for
from .test_gateway_external import CLIENT, external, get, pod_of

pytestmark = pytest.mark.netns
NS = "gw-nodeport"
GW = "gateway.networking.k8s.io/v1"
UNPOOLED = "192.0.2.10"  # TEST-NET-1: in no pool, so the Gateway's claim waits


def rule(path: str, backend: str) -> dict[str, Any]:
    return {"matches": [{"path": {"type": "PathPrefix", "value": path}}],
            "backendRefs": [{"name": backend, "port": 80}]}


@pytest.fixture(scope="module")
def site(lab: Lab) -> dict[str, Any]:
    gateway = {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "nopool", "namespace": NS},
               "spec": {"gatewayClassName": "tulle",
                        "addresses": [{"type": "IPAddress", "value": UNPOOLED}],
                        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"},
                                      {"name": "db", "port": 5432, "protocol": "TCP"}]}}
    route = {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": "web", "namespace": NS},
             "spec": {"parentRefs": [{"name": "nopool", "sectionName": "http"}],
                      "hostnames": ["web.example"],
                      "rules": [rule("/one", "one"), rule("/two", "two")]}}
    # "two" admits only its namespace's pods: the outside client is not one of them.
    pods_only = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "pods-only", "namespace": NS},
                 "spec": {"podSelector": {"matchLabels": {"app": "two"}},
                          "policyTypes": ["Ingress"],
                          "ingress": [{"from": [{"podSelector": {}}]}]}}
    apply(lab, namespace(NS), deployment(NS, "one", 1, node="node1"), service(NS, "one"),
          deployment(NS, "two", 1, node="node2"), service(NS, "two"), pods_only, gateway, route)
    lab.wait_pods_ready(NS, 2, timeout=90)

    def node_ports() -> dict[int, int] | None:
        svc = next((s for s in lab.get("services", NS)
                    if s["metadata"]["name"] == "tulle-gateway-nopool"), None)
        ports = {p["port"]: p.get("nodePort") for p in (svc or {}).get("spec", {}).get("ports", [])}
        return ports if ports and all(ports.values()) else None

    ports = wait_for(node_ports, timeout=30, what="the Gateway's Service and its nodePorts")
    nodes = [str(n.fabric_ip) for n in plan_lab(lab.name, 2).nodes]
    info = {"nodes": nodes, "http": ports[80], "tcp": ports[5432]}
    for address in nodes:  # each node's agent and waypoint, not only the first one's
        wait_for(lambda a=address: get(lab, a, "web.example", "/one/ready",
                                       port=info["http"])[0] == "200",
                 timeout=30, what=f"the Gateway served at {address}:{info['http']}")
    return info


def gateway_status(lab: Lab) -> dict[str, Any]:
    [gw] = [g for g in lab.get("gateways", NS) if g["metadata"]["name"] == "nopool"]
    return gw.get("status") or {}


def test_the_status_has_no_address_and_names_the_node_ports(lab: Lab,
                                                            site: dict[str, Any]) -> None:
    status = gateway_status(lab)
    assert not status.get("addresses")
    programmed = next(c for c in status["conditions"] if c["type"] == "Programmed")
    assert (programmed["status"], programmed["reason"]) == ("False", "AddressNotUsable")
    assert f"80->{site['http']}" in programmed["message"], programmed
    assert str(site["tcp"]) not in programmed["message"]  # the TCP listener is not served


@pytest.mark.parametrize("node", [0, 1])
@pytest.mark.parametrize("backend", ["one"])
def test_every_nodes_address_serves_the_gateways_routes(lab: Lab, site: dict[str, Any],
                                                         node: int, backend: str) -> None:
    code, echoed = get(lab, site["nodes"][node], "web.example", f"/{backend}/x?q=1",
                       port=site["http"])
    assert code == "200" and pod_of(echoed) == backend
    assert echoed is not None and echoed["path"] == f"/{backend}/x?q=1"
    assert echoed["headers"]["X-Forwarded-For"] == [CLIENT]  # the waypoint saw the client


def test_no_route_means_404_not_a_backend(lab: Lab, site: dict[str, Any]) -> None:
    for host, path in (("web.example", "/nowhere"), ("other.example", "/one")):
        code, echoed = get(lab, site["nodes"][0], host, path, port=site["http"])
        assert code == "404" and echoed is None, (host, path)


def test_network_policy_still_refuses_the_outside_client(lab: Lab, site: dict[str, Any]) -> None:
    code, echoed = get(lab, site["nodes"][0], "web.example", "/two/secret", port=site["http"])
    assert code == "403" and echoed is None


@pytest.mark.parametrize("which", ["listener port", "TCP listener's nodePort", "unassigned"])
def test_other_ports_on_a_nodes_address_are_refused(lab: Lab, site: dict[str, Any],
                                                    which: str) -> None:
    port = {"listener port": 80, "TCP listener's nodePort": site["tcp"],
            "unassigned": 29999}[which]
    out = external(lab, "curl", "-s", "--max-time", "3", "-H", "Host: web.example",
                   f"http://{site['nodes'][0]}:{port}/one")
    assert out.returncode != 0 and out.stdout == "", out  # refused, reset or dropped
