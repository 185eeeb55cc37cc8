"""Kubernetes NetworkPolicy semantics enforced by the datapath, across both nodes.

The case table runs once per way of calling the server (``VIAS``): its pod address (L4, the
kernel decides), and, with an HTTPRoute on every port of its Service, its ClusterIP and its
DNS name (through the waypoint, which must decide exactly as the kernel does: issue 9
item 2). Clients sit on both nodes, so the waypoint path is judged locally and across nodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns

SERVER_PORTS = [{"name": "http", "containerPort": 8080}, {"name": "alt", "containerPort": 9090}]
# (client namespace, client app) for each client; the server is pol-a/srv on node1.
CLIENTS = {"a": ("pol-a", "cli-a"), "b1": ("pol-b", "cli-b1"), "b2": ("pol-b", "cli-b2"),
           "c": ("pol-c", "cli-c")}


def policy(name: str, spec: dict[str, Any], ns: str = "pol-a") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


SRV = {"matchLabels": {"app": "srv"}}
CASES: list[tuple[str, dict[str, Any], dict[tuple[str, int], bool]]] = [
    ("deny-all-ingress", policy("deny", {"podSelector": SRV, "policyTypes": ["Ingress"]}),
     {("a", 8080): False, ("b1", 8080): False, ("c", 9090): False}),
    ("allow-namespace-by-selector", policy("from-b", {"podSelector": SRV, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}]}]}),
     {("b1", 8080): True, ("b2", 9090): True, ("c", 8080): False, ("a", 8080): False}),
    ("one-port-only", policy("port", {"podSelector": SRV, "ingress": [
        {"ports": [{"port": 8080}]}]}),
     {("a", 8080): True, ("c", 8080): True, ("a", 9090): False, ("c", 9090): False}),
    ("named-port", policy("named", {"podSelector": SRV, "ingress": [
        {"ports": [{"port": "alt"}]}]}),
     {("b1", 9090): True, ("b1", 8080): False}),
    ("ipblock-with-except", policy("cidr", {"podSelector": SRV, "ingress": [
        {"from": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}]}]}),
     {("b1", 8080): True, ("a", 8080): False, ("b2", 8080): False, ("c", 8080): False}),
    ("egress-deny", policy("egress", {"podSelector": {"matchLabels": {"app": "cli-b1"}},
                                      "policyTypes": ["Egress"]}, ns="pol-b"),
     {("b1", 8080): False, ("b2", 8080): True}),
    ("egress-allow-pod-selector", policy("egress-srv", {
        "podSelector": {"matchLabels": {"app": "cli-b1"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {}, "podSelector": SRV}],
                    "ports": [{"port": 9090, "endPort": 9095}]},
                   # DNS, so that calling by name is judged on the server alone
                   {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]},
        ns="pol-b"),
     {("b1", 9090): True, ("b1", 8080): False}),
]
# How clients call the server: its pod address (no waypoint), or with an HTTPRoute on every
# Service port, its ClusterIP or its name (through the waypoint of the client's node).
VIAS = ["pod-ip", "cluster-ip+route", "name+route"]
VIA_HEADER = "X-Tulle-Via"  # added by the routes: proof that a request went through the waypoint


def srv_routes() -> list[dict[str, Any]]:
    return [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": f"srv-{port}", "namespace": "pol-a"},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "srv", "port": port}],
                      "rules": [{"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {
                          "add": [{"name": VIA_HEADER, "value": "waypoint"}]}}],
                          "backendRefs": [{"name": "srv", "port": port}]}]}}
            for port in (8080, 9090)]


@pytest.fixture(scope="module")
def servers(lab: Lab) -> dict[str, Any]:
    srv = service("pol-a", "srv", 8080, "http")
    srv["spec"]["ports"].append({"name": "alt", "port": 9090, "targetPort": "alt", "protocol": "TCP"})
    apply(lab, namespace("pol-a", {"team": "a"}), namespace("pol-b", {"team": "b"}),
          namespace("pol-c", {"team": "c"}), srv,
          deployment("pol-a", "srv", 1, ports=SERVER_PORTS, node="node1"),
          deployment("pol-a", "cli-a", 1, node="node2"),
          deployment("pol-b", "cli-b1", 1, node="node1"),
          deployment("pol-b", "cli-b2", 1, node="node2"),
          deployment("pol-c", "cli-c", 1, node="node2"))
    for ns, count in (("pol-a", 2), ("pol-b", 2), ("pol-c", 1)):
        lab.wait_pods_ready(ns, count, timeout=90)
    server_pod = pods_of(lab, "pol-a", "srv")[0]
    cluster_ip = [s for s in lab.get("services", "pol-a")
                  if s["metadata"]["name"] == "srv"][0]["spec"]["clusterIP"]
    client_pods = {key: (ns, pods_of(lab, ns, app)[0]["metadata"]["name"])
                   for key, (ns, app) in CLIENTS.items()}
    return {"server": server_pod["status"]["podIP"], "server_pod": server_pod["metadata"]["name"],
            "cluster_ip": cluster_ip, "clients": client_pods}


@pytest.fixture(scope="module", params=VIAS)
def setup(request: pytest.FixtureRequest, lab: Lab, servers: dict[str, Any]) -> Iterator[dict[str, Any]]:
    via = request.param
    host = {"pod-ip": servers["server"], "cluster-ip+route": servers["cluster_ip"],
            "name+route": "srv.pol-a"}[via]
    routed = via.endswith("+route")
    if routed:
        apply(lab, *srv_routes())
    state = {**servers, "via": via, "host": host, "routed": routed}
    try:
        if routed:
            wait_for(lambda: all(call(lab, state, c, p)[1].get(VIA_HEADER) == ["waypoint"]
                                 for c in CLIENTS for p in (8080, 9090)),
                     timeout=30, what="the routes are served")
        yield state
    finally:
        if routed:
            for route in srv_routes():
                lab.tulle("delete", "httproute", route["metadata"]["name"], "-n", "pol-a")


def call(lab: Lab, setup: dict[str, Any], client: str, port: int) -> tuple[str, dict[str, Any]]:
    """The HTTP status (000: no answer) and the echoed request's headers."""
    ns, pod = setup["clients"][client]
    proc = lab.exec(ns, pod, "curl", "-s", "-w", "\n%{http_code}", "--max-time", "1.5",
                    f"http://{setup['host']}:{port}/", check=False)
    body, _, code = proc.stdout.rpartition("\n")
    try:
        headers = json.loads(body)["headers"] if code == "200" else {}
    except ValueError:
        headers = {}
    return code, headers


def reaches(lab: Lab, setup: dict[str, Any], client: str, port: int) -> bool:
    """True when the server answered 200 (through the waypoint when the setup is routed)."""
    code, headers = call(lab, setup, client, port)
    if code != "200":
        return False
    if setup["routed"]:  # a 200 that skipped the waypoint would prove nothing
        assert headers.get(VIA_HEADER) == ["waypoint"], headers
    return True


@pytest.mark.parametrize(("case", "obj", "expect"), CASES, ids=[c[0] for c in CASES])
def test_policy_case(lab: Lab, setup: dict[str, Any], case: str, obj: dict[str, Any],
                     expect: dict[tuple[str, int], bool]) -> None:
    assert all(reaches(lab, setup, c, p) for c, p in expect), "all open before the policy"
    lab.apply(yaml.safe_dump(obj))
    try:
        # Propagation is well under a second; allow some slack on a busy machine.
        wait_for(lambda: all(reaches(lab, setup, c, p) == want for (c, p), want in expect.items()),
                 timeout=10, what=f"policy {case} in force")
        observed = {(c, p): reaches(lab, setup, c, p) for c, p in expect}
        assert observed == expect
    finally:
        lab.tulle("delete", "networkpolicy", obj["metadata"]["name"], "-n", obj["metadata"]["namespace"])
        wait_for(lambda: all(reaches(lab, setup, c, p) for c, p in expect), timeout=10,
                 what="policy removed")


def test_denied_connections_are_dropped_flows_with_policy_reason(lab: Lab, servers: dict[str, Any]) -> None:
    setup = {**servers, "host": servers["server"], "routed": False}
    obj = CASES[0][1]
    lab.apply(yaml.safe_dump(obj))
    try:
        wait_for(lambda: not reaches(lab, setup, "c", 8080), timeout=10, what="deny in force")
        time.sleep(0.3)
        out = lab.tulle("observe", "--last", "500", "--verdict", "DROPPED", "--to-namespace", "pol-a",
                        "-o", "json").stdout
        flows = [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]
        denied = [f for f in flows if f.get("drop_reason_desc") == "POLICY_DENIED"]
        assert denied, out[-2000:]
        assert denied[-1]["destination"]["pod_name"].startswith("srv-")
        assert denied[-1]["traffic_direction"] == "INGRESS"
    finally:
        lab.tulle("delete", "networkpolicy", "deny", "-n", "pol-a")
