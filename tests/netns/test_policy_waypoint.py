"""NetworkPolicy through the waypoint in a live lab (issue 9 item 2): a denied request is a
403 and a DROPPED flow naming the client pod, and never reaches the backend; no pod reaches
any node's waypoint except through the datapath's redirect; a process that binds the local
waypoint address gets no waypoint identity. (The full case table through the waypoint is
tests/netns/test_policy.py, parametrised over ``VIAS``.)"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lab.state import LabPaths
from lab.topology import WAYPOINT_PORT, plan_lab

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
SRV_NS, CLI_NS = "pw-srv", "pw-cli"
DENY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": SRV_NS},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
ROUTE = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
         "metadata": {"name": "srv", "namespace": SRV_NS},
         "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "srv", "port": 80}],
                  "rules": [{"backendRefs": [{"name": "srv", "port": 80}]}]}}


@pytest.fixture(scope="module")
def env(lab: Lab) -> dict[str, Any]:
    apply(lab, namespace(SRV_NS), namespace(CLI_NS),
          deployment(SRV_NS, "srv", 1, node="node1"), service(SRV_NS, "srv"), ROUTE,
          deployment(CLI_NS, "cli-near", 1, node="node1"),
          deployment(CLI_NS, "cli-far", 1, node="node2"))
    lab.wait_pods_ready(SRV_NS, 1, timeout=90)
    lab.wait_pods_ready(CLI_NS, 2, timeout=90)
    srv = pods_of(lab, SRV_NS, "srv")[0]
    clients = {app: pods_of(lab, CLI_NS, app)[0]["metadata"]["name"] for app in ("cli-near", "cli-far")}
    for pod in clients.values():
        wait_for(lambda pod=pod: curl(lab, pod, "http://srv.pw-srv/")[0] == "200", timeout=30,
                 what=f"{pod} served through the route")
    return {"srv": srv["metadata"]["name"], "srv_ip": srv["status"]["podIP"], "clients": clients}


@pytest.fixture
def denied(lab: Lab, env: dict[str, Any]) -> Iterator[None]:
    apply(lab, DENY)
    try:
        yield
    finally:
        lab.tulle("delete", "networkpolicy", "deny", "-n", SRV_NS)
        for pod in env["clients"].values():
            wait_for(lambda pod=pod: curl(lab, pod, "http://srv.pw-srv/")[0] == "200", timeout=15,
                     what="the policy removed")


def curl(lab: Lab, pod: str, url: str, *args: str) -> tuple[str, str]:
    proc = lab.exec(CLI_NS, pod, "curl", "-s", "-w", "\n%{http_code}", "--max-time", "1.5",
                    *args, url, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return code, body


def dropped(lab: Lab) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "--last", "2000", "--verdict", "DROPPED", "-o", "json").stdout
    return [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]


def echo_log(lab: Lab, env: dict[str, Any]) -> str:
    path = LabPaths.for_lab(lab.name).pod_log(SRV_NS, env["srv"], "srv")
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("client", ["cli-near", "cli-far"])
def test_denied_request_is_403_a_dropped_flow_and_never_reaches_the_backend(
        lab: Lab, env: dict[str, Any], denied: None, client: str) -> None:
    pod = env["clients"][client]
    marker = f"/denied-{uuid.uuid4().hex[:8]}"
    wait_for(lambda: curl(lab, pod, "http://srv.pw-srv/probe")[0] == "403", timeout=10,
             what="the deny in force at the waypoint")
    code, body = curl(lab, pod, f"http://srv.pw-srv{marker}")
    assert code == "403", body
    time.sleep(1.0)
    assert marker not in echo_log(lab, env)

    def flow() -> dict[str, Any] | None:
        found = [f for f in dropped(lab) if marker in ((f.get("l7") or {}).get("http") or {}).get("url", "")]
        return found[-1] if found else None

    f = wait_for(flow, timeout=10, what="the DROPPED L7 flow")
    assert f["drop_reason_desc"] == "POLICY_DENIED"
    assert f["source"]["pod_name"] == pod and f["source"]["namespace"] == CLI_NS
    assert f["l7"]["http"]["code"] == 403


@pytest.mark.parametrize("node", ["node1", "node2"], ids=["local-waypoint", "remote-waypoint"])
def test_a_pod_cannot_dial_a_waypoint(lab: Lab, env: dict[str, Any], node: str) -> None:
    waypoint = plan_lab(lab.name, 2).node(node).waypoint_ip
    pod = env["clients"]["cli-near"]  # on node1
    code, body = curl(lab, pod, f"http://{waypoint}:{WAYPOINT_PORT}/",
                      "-H", "Host: srv.pw-srv.svc.cluster.local:80")
    assert code == "000", body  # no connection at all: the SYN is dropped

    def flow() -> dict[str, Any] | None:
        found = [f for f in dropped(lab) if f.get("drop_reason_desc") == "WAYPOINT_NOT_REDIRECTED"
                 and f["IP"]["destination"] == str(waypoint)]
        return found[-1] if found else None

    f = wait_for(flow, timeout=10, what="the WAYPOINT_NOT_REDIRECTED drop")
    assert f["source"]["pod_name"] == pod


def test_binding_the_waypoint_address_gains_nothing(lab: Lab, env: dict[str, Any], denied: None) -> None:
    node = plan_lab(lab.name, 2).node("node1")

    def from_node(source: str) -> str:
        proc = subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{node.netns}", "--", "curl", "-s", "-o", "/dev/null",
             "-w", "%{http_code}", "--max-time", "1.5", "--interface", source,
             f"http://{env['srv_ip']}:8080/"],
            capture_output=True, text=True, timeout=10, check=False)
        return proc.stdout

    # The node itself is let in, as Kubernetes does; its waypoint address without the
    # waypoint's mark is nobody, and the deny applies.
    assert from_node(str(node.gateway_ip)) == "200"
    assert from_node(str(node.waypoint_ip)) == "000"
    denied_flows = [f for f in dropped(lab) if f.get("drop_reason_desc") == "POLICY_DENIED"
                    and f["IP"]["source"] == str(node.waypoint_ip)]
    assert denied_flows
