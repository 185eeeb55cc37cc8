"""AUDIT AuthorizationPolicy in a live lab: a request an AUDIT policy matches is served, and
``tulle observe --verdict AUDIT`` shows its flow naming the policy (``ingress_denied_by``,
where Hubble names an AUDIT verdict's policies). The policy reads only L4 attributes (the
caller's namespace), which the kernel could judge but cannot record: its Service goes to the
waypoint for it. A caller the policy does not match is served with an ordinary flow."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
SRV, CLI, OTHER = "au-srv", "au-cli", "au-other"
URL = f"http://srv.{SRV}"
AUDIT = {"apiVersion": "security.tulle.io/v1", "kind": "AuthorizationPolicy",
         "metadata": {"name": "audit-cli", "namespace": SRV},
         "spec": {"selector": {"matchLabels": {"app": "srv"}}, "action": "AUDIT",
                  "rules": [{"from": [{"source": {"namespaces": [CLI]}}]}]}}


def curl(lab: Lab, ns: str, pod: str, url: str) -> str:
    proc = lab.exec(ns, pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "--max-time", "2", url, check=False)
    return proc.stdout.strip()


def flows(lab: Lab, *args: str) -> list[dict[str, Any]]:
    out = lab.tulle("observe", "--last", "3000", *args, "-o", "json").stdout
    return [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]


def with_marker(found: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    return [f for f in found if marker in ((f.get("l7") or {}).get("http") or {}).get("url", "")]


@pytest.fixture(scope="module")
def pods(lab: Lab) -> Iterator[dict[str, str]]:
    apply(lab, namespace(SRV), namespace(CLI), namespace(OTHER),
          deployment(SRV, "srv", 1, node="node2"), service(SRV, "srv"),
          deployment(CLI, "cli", 1, node="node1"), deployment(OTHER, "cli", 1, node="node1"),
          AUDIT)
    for ns in (SRV, CLI, OTHER):
        lab.wait_pods_ready(ns, 1, timeout=90)
    names = {ns: pods_of(lab, ns, "cli")[0]["metadata"]["name"] for ns in (CLI, OTHER)}

    def audited() -> bool:  # the waypoint has the policy and the Service is steered
        marker = f"/probe-{uuid.uuid4().hex[:8]}"
        if curl(lab, CLI, names[CLI], URL + marker) != "200":
            return False
        return bool(with_marker(flows(lab, "--verdict", "AUDIT"), marker))

    wait_for(audited, timeout=60, what="an AUDIT flow from the waypoint")
    try:
        yield names
    finally:
        lab.tulle("delete", "authorizationpolicy", "audit-cli", "-n", SRV, check=False)


def test_an_audited_request_is_served_and_recorded(lab: Lab, pods: dict[str, str]) -> None:
    marker = f"/audited-{uuid.uuid4().hex[:8]}"
    assert curl(lab, CLI, pods[CLI], URL + marker) == "200"
    found = wait_for(lambda: with_marker(flows(lab, "--verdict", "AUDIT"), marker), timeout=10,
                     what="the AUDIT flow")
    [flow] = found
    assert flow["verdict"] == "AUDIT" and flow["l7"]["http"]["code"] == 200
    assert flow["source"]["pod_name"] == pods[CLI]
    assert [(p["namespace"], p["name"], p["kind"]) for p in flow["ingress_denied_by"]] == [
        (SRV, "audit-cli", "AuthorizationPolicy")]
    out = lab.tulle("observe", "--last", "3000", "--verdict", "AUDIT",
                    "--print-policy-names").stdout
    assert "AUDIT BY audit-cli (AuthorizationPolicy)" in out


def test_a_caller_the_policy_does_not_match_is_not_audited(
    lab: Lab, pods: dict[str, str]
) -> None:
    marker = f"/plain-{uuid.uuid4().hex[:8]}"
    assert curl(lab, OTHER, pods[OTHER], URL + marker) == "200"
    found = wait_for(lambda: with_marker(flows(lab), marker), timeout=10, what="its flow")
    assert [f["verdict"] for f in found] == ["FORWARDED"]
    assert with_marker(flows(lab, "--verdict", "AUDIT"), marker) == []
