"""The lab's outside: the external client reaches nodes' addresses and nothing inside the
cluster, and each node answers a LoadBalancer + Local Service's health-check node port by
whether it has a local endpoint (kube-proxy's 200 / 503), as a cloud load balancer sees it."""

from __future__ import annotations

import json
import time

import pytest

from lab.topology import plan_lab

from .conftest import Lab

pytestmark = pytest.mark.netns

LB_LOCAL = """
apiVersion: v1
kind: Namespace
metadata: {name: outside}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: outside}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: echo
          image: tulle/echo
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: outside}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def external(lab: Lab, *cmd: str, check: bool = True) -> str:
    proc = lab.tulle("lab", "exec", "--external", "--", *cmd, check=check, timeout=30)
    return proc.stdout + proc.stderr


def test_the_external_client_reaches_nodes_but_no_pod_or_service_range(lab: Lab) -> None:
    plan = plan_lab(lab.name, 2)
    for node in plan.nodes:
        assert "1 received" in external(lab, "ping", "-c", "1", "-W", "2", str(node.fabric_ip))
    # No pod-CIDR, service or default route: the outside knows only the fabric.
    for inside in ("10.244.1.5", "10.96.0.10"):
        out = external(lab, "ip", "route", "get", inside, check=False)
        assert "unreachable" in out.lower(), out


def test_health_check_node_port_answers_per_node(lab: Lab) -> None:
    lab.apply(LB_LOCAL)
    try:
        (pod,) = lab.wait_pods_ready("outside", 1)
        (svc,) = lab.get("services", "outside")
        port = svc["spec"]["healthCheckNodePort"]
        assert 30000 <= port <= 32767
        plan = plan_lab(lab.name, 2)
        want = {n.name: (200 if n.name == pod["spec"]["nodeName"] else 503) for n in plan.nodes}
        seen: dict[str, tuple[int, dict]] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for node in plan.nodes:
                out = external(lab, "curl", "-s", "--max-time", "3", "-w", "\n%{http_code}",
                               f"http://{node.fabric_ip}:{port}/", check=False)
                body, _, code = out.rpartition("\n")
                seen[node.name] = (int(code or 0), json.loads(body) if body.strip() else {})
            if {name: code for name, (code, _) in seen.items()} == want:
                break
            time.sleep(0.5)
        assert {name: code for name, (code, _) in seen.items()} == want, seen
        local = seen[pod["spec"]["nodeName"]][1]
        assert local["service"] == {"namespace": "outside", "name": "web"}
        assert local["localEndpoints"] == 1
    finally:
        lab.tulle("delete", "-f", "-", input=LB_LOCAL, check=False)
