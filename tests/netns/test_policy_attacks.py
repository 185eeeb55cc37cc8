"""Attacks on "NetworkPolicy means the same with or without an HTTPRoute" in a live lab
(issue 9 review): ways a pod might use the waypoint to reach what it could not reach
directly. Each test is an attempt; the waypoint must refuse it."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
NS = "pa-att"
SRV_NS = "pa-srv"


def route(ns: str, name: str, backend: str, port: int = 80,
          filters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"backendRefs": [{"name": backend, "port": port}]}
    if filters:
        rule["filters"] = filters
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": name, "port": port}],
                     "rules": [rule]}}


def manual_service(ns: str, name: str, address: str, port: int) -> list[dict[str, Any]]:
    """A selectorless Service with a hand-written EndpointSlice (as any namespace user may
    write) pointing at ``address:port``."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"name": "p", "port": 80, "targetPort": port, "protocol": "TCP"}]}}
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": f"{name}-1", "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
           "ports": [{"name": "p", "port": port, "protocol": "TCP"}]}
    return [svc, eps]


@pytest.fixture(scope="module")
def env(lab: Lab) -> dict[str, Any]:
    apply(lab, namespace(NS), namespace(SRV_NS),
          deployment(NS, "cli", 1, node="node1"),
          deployment(SRV_NS, "srv", 1, node="node2"), service(SRV_NS, "srv"),
          # The server namespace admits nobody: direct or through the waypoint.
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "deny", "namespace": SRV_NS},
           "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}},
          # The attacker's own Service and route, whose mirror copies to the denied Service.
          deployment(NS, "own", 1, node="node1"), service(NS, "own"),
          route(NS, "own", "own", filters=[{"type": "RequestMirror", "requestMirror": {
              "backendRef": {"name": "srv", "namespace": SRV_NS, "port": 80}}}]),
          {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
           "metadata": {"name": "all", "namespace": SRV_NS},
           "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                              "namespace": NS}],
                    "to": [{"group": "", "kind": "Service"}]}})
    lab.wait_pods_ready(NS, 2, timeout=90)
    lab.wait_pods_ready(SRV_NS, 1, timeout=90)
    cli = pods_of(lab, NS, "cli")[0]["metadata"]["name"]
    srv = pods_of(lab, SRV_NS, "srv")[0]["metadata"]["name"]
    wait_for(lambda: curl(lab, cli, "http://own.pa-att/")[0] == "200", timeout=30,
             what="the attacker's own route serving")
    return {"cli": cli, "srv": srv}


def curl(lab: Lab, pod: str, url: str, *args: str) -> tuple[str, str]:
    proc = lab.exec(NS, pod, "curl", "-s", "-w", "\n%{http_code}", "--max-time", "1.5",
                    *args, url, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return code, body


def srv_log(lab: Lab, env: dict[str, Any]) -> str:
    path = LabPaths.for_lab(lab.name).pod_log(SRV_NS, env["srv"], "srv")
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("target", ["loopback", "unspecified"])
def test_a_route_cannot_reach_the_nodes_private_listeners(
        lab: Lab, env: dict[str, Any], target: str) -> None:
    """A hand-written EndpointSlice naming the node's loopback (the waypoint's metrics on
    127.0.0.1:9966), 0.0.0.0 (the node itself) or the waypoint's own address, behind a
    route: the waypoint would dial it from inside the node. Kubernetes refuses such
    endpoints (ValidateNonSpecialIP); the waypoint must never dial them either."""
    address = {"loopback": "127.0.0.1", "unspecified": "0.0.0.0"}[target]
    name = f"loop-{target}"
    objs = manual_service(NS, name, address, 9966)
    lab.tulle("apply", "-f", "-", input=_dump(*objs, route(NS, name, name)), check=False)
    # Whatever the datapath does with it, the metrics page never comes back.
    for _ in range(10):
        code, body = curl(lab, env["cli"], f"http://{name}.{NS}/metrics")
        assert "tulle_waypoint" not in body and code != "200", (code, body[:200])


def test_a_mirror_to_a_denied_backend_is_not_sent(lab: Lab, env: dict[str, Any]) -> None:
    marker = f"/mirror-{uuid.uuid4().hex[:8]}"
    code, _ = curl(lab, env["cli"], f"http://own.pa-att{marker}")
    assert code == "200"
    code, _ = curl(lab, env["cli"], "http://srv.pa-srv/")  # control: direct is denied
    assert code in ("000", "403")
    wait_for(lambda: True, timeout=1)
    assert marker not in srv_log(lab, env)


def test_h2c_prior_knowledge_and_pipelining_are_judged_per_request(
        lab: Lab, env: dict[str, Any]) -> None:
    """Through the attacker's own (allowed) Service, ask in h2c and in a pipelined HTTP/1.1
    second request for the denied Service by Host: behind redirection the original
    destination, not the Host, picks the Service, and the denied backend never sees it."""
    marker = f"/smuggle-{uuid.uuid4().hex[:8]}"
    code, _ = curl(lab, env["cli"], f"http://own.pa-att{marker}", "--http2-prior-knowledge",
                   "-H", "Host: srv.pa-srv.svc.cluster.local")
    assert code == "200"
    script = (
        "import socket,sys\n"
        "s=socket.create_connection(('own.pa-att',80),timeout=2)\n"
        f"r=b'GET {marker}a HTTP/1.1\\r\\nHost: own.pa-att\\r\\n\\r\\n'"
        f"+b'GET {marker}b HTTP/1.1\\r\\nHost: srv.pa-srv.svc.cluster.local\\r\\nConnection: close\\r\\n\\r\\n'\n"
        "s.sendall(r)\n"
        "d=b''\n"
        "while True:\n"
        "  c=s.recv(65536)\n"
        "  if not c: break\n"
        "  d+=c\n"
        "print(d.count(b'HTTP/1.1 200'))\n")
    out = lab.exec(NS, env["cli"], "/usr/bin/python3", "-c", script, check=False, timeout=15)
    assert out.stdout.strip() == "2", out
    wait_for(lambda: True, timeout=1)
    assert marker not in srv_log(lab, env)


def _dump(*objs: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump_all(objs)


KEEPALIVE = """
import http.client, sys, time
c = http.client.HTTPConnection('lbl.pa-lbl', 80, timeout=2)
codes = []
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    c.request('GET', '/keepalive')
    r = c.getresponse(); r.read()
    codes.append(r.status)
    if r.status == 403:
        break
    if codes == [200]:
        print('first', flush=True)
    time.sleep(0.2)
print(' '.join(map(str, codes)))
"""


def test_a_relabelled_client_is_judged_anew_on_its_open_connection(
        lab: Lab, env: dict[str, Any]) -> None:
    """The client keeps one HTTP/1.1 connection open through the waypoint while its
    namespace loses the label the backend's ingress policy admits: the next request on the
    same connection is refused (policy is judged per request on the client's current
    identity, not the one it had when it connected)."""
    apply(lab, namespace("pa-lbl"), deployment("pa-lbl", "lbl", 1, node="node2"),
          service("pa-lbl", "lbl"), route("pa-lbl", "lbl", "lbl"),
          {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "ok-only", "namespace": "pa-lbl"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
               "matchLabels": {"team": "ok"}}}]}]}},
          namespace(NS, {"team": "ok"}))
    try:
        lab.wait_pods_ready("pa-lbl", 1, timeout=90)
        wait_for(lambda: curl(lab, env["cli"], "http://lbl.pa-lbl/")[0] == "200", timeout=30,
                 what="the labelled client admitted")
        result: dict[str, str] = {}

        def run() -> None:
            proc = lab.exec(NS, env["cli"], "/usr/bin/python3", "-c", KEEPALIVE, check=False,
                            timeout=30)
            result["out"] = proc.stdout + proc.stderr

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(2.0)  # the first requests pass on the open connection
        apply(lab, namespace(NS, {"team": "no"}))
        thread.join(40)
        lines = result["out"].strip().splitlines()
        assert lines[0] == "first", result
        codes = lines[-1].split()
        assert codes[0] == "200" and codes[-1] == "403", result
    finally:
        apply(lab, namespace(NS))
        lab.tulle("delete", "namespace", "pa-lbl", check=False)
