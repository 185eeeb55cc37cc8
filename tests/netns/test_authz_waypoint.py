"""AuthorizationPolicy in a live lab (issue 14 item 1), through real pods on both nodes: a
Service with no HTTPRoute under a policy goes through the waypoint; a DENY by path or by
method is a 403 ``RBAC: access denied`` and a DROPPED flow naming the policy, and never
reaches the backend; a caller whose ServiceAccount (or whose namespace) the ALLOW policy
does not list is denied, while the listed ServiceAccount passes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
SRV, CLI, EVIL = "az-srv", "az-cli", "az-evil"
URL = f"http://srv.{SRV}"


def _policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "security.tulle.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": SRV}, "spec": spec}


WORKLOAD = {"matchLabels": {"app": "srv"}}
POLICIES = [
    _policy("deny-admin", {"selector": WORKLOAD, "action": "DENY",
                           "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}]}]}),
    _policy("deny-delete", {"action": "DENY",
                            "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]}),
    _policy("allow-good", {"selector": WORKLOAD,
                           "rules": [{"from": [{"source": {"serviceAccounts": [f"{CLI}/good"]}}]}]}),
]


def _client(ns: str, name: str, account: str, node: str) -> dict[str, Any]:
    d = deployment(ns, name, 1, node=node)
    d["spec"]["template"]["spec"]["serviceAccountName"] = account
    return d


def curl(lab: Lab, ns: str, pod: str, url: str, *args: str) -> tuple[str, str]:
    proc = lab.exec(ns, pod, "curl", "-s", "-w", "\n%{http_code}", "--max-time", "1.5",
                    *args, url, check=False)
    body, _, code = proc.stdout.rpartition("\n")
    return code, body


@pytest.fixture(scope="module")
def env(lab: Lab) -> Iterator[dict[str, Any]]:
    apply(lab, namespace(SRV), namespace(CLI), namespace(EVIL),
          deployment(SRV, "srv", 1, node="node1"), service(SRV, "srv"),
          _client(CLI, "good", "good", "node2"), _client(CLI, "bad", "bad", "node1"),
          _client(EVIL, "evil", "good", "node1"))
    lab.wait_pods_ready(SRV, 1, timeout=90)
    lab.wait_pods_ready(CLI, 2, timeout=90)
    lab.wait_pods_ready(EVIL, 1, timeout=90)
    pods = {(ns, app): pods_of(lab, ns, app)[0]["metadata"]["name"]
            for ns, app in ((CLI, "good"), (CLI, "bad"), (EVIL, "evil"))}
    for (ns, _), pod in pods.items():
        wait_for(lambda ns=ns, pod=pod: curl(lab, ns, pod, f"{URL}/")[0] == "200", timeout=30,
                 what=f"{pod} served before any policy")
    apply(lab, *POLICIES)
    good = pods[(CLI, "good")]
    wait_for(lambda: curl(lab, CLI, good, f"{URL}/admin/probe")[0] == "403", timeout=30,
             what="the policies in force at the waypoint")
    try:
        srv = pods_of(lab, SRV, "srv")[0]
        yield {"pods": pods, "srv": srv["metadata"]["name"], "srv_ip": srv["status"]["podIP"]}
    finally:
        for p in POLICIES:
            lab.tulle("delete", "authorizationpolicy", p["metadata"]["name"], "-n", SRV,
                      check=False)


def dropped(lab: Lab, marker: str) -> dict[str, Any] | None:
    out = lab.tulle("observe", "--last", "2000", "--verdict", "DROPPED", "-o", "json").stdout
    flows = [json.loads(line)["flow"] for line in out.splitlines() if line.strip()]
    found = [f for f in flows if marker in ((f.get("l7") or {}).get("http") or {}).get("url", "")]
    return found[-1] if found else None


def echo_log(lab: Lab, env: dict[str, Any]) -> str:
    path = LabPaths.for_lab(lab.name).pod_log(SRV, env["srv"], "srv")
    return path.read_text() if path.exists() else ""


def _denied(lab: Lab, env: dict[str, Any], ns: str, app: str, path: str, *args: str,
            reason: str, policy: str) -> dict[str, Any]:
    marker = f"{path}-{uuid.uuid4().hex[:8]}"
    code, body = curl(lab, ns, env["pods"][(ns, app)], f"{URL}{marker}", *args)
    assert (code, body) == ("403", "RBAC: access denied")
    f = wait_for(lambda: dropped(lab, marker), timeout=10, what="the DROPPED L7 flow")
    assert f["drop_reason_desc"] == reason
    assert f["l7"]["http"]["code"] == 403
    assert f["source"]["pod_name"] == env["pods"][(ns, app)]
    assert [(p["namespace"], p["name"], p["kind"]) for p in f["ingress_denied_by"]] == [
        (SRV, policy, "AuthorizationPolicy")]
    time.sleep(0.5)
    assert marker not in echo_log(lab, env)
    return f


def test_the_listed_service_account_passes(lab: Lab, env: dict[str, Any]) -> None:
    code, body = curl(lab, CLI, env["pods"][(CLI, "good")], f"{URL}/ok")
    assert code == "200", body
    assert json.loads(body)["path"] == "/ok"


def test_deny_by_path(lab: Lab, env: dict[str, Any]) -> None:
    _denied(lab, env, CLI, "good", "/admin/users", reason="POLICY_DENY", policy="deny-admin")
    # the attacker's spelling of the same path
    _denied(lab, env, CLI, "good", "/x/../admin/users", "--path-as-is",
            reason="POLICY_DENY", policy="deny-admin")
    out = lab.tulle("observe", "--last", "2000", "--verdict", "DROPPED",
                    "--print-policy-names").stdout
    assert "BY deny-admin (AuthorizationPolicy)" in out


def test_deny_by_method(lab: Lab, env: dict[str, Any]) -> None:
    _denied(lab, env, CLI, "good", "/items", "-X", "DELETE", reason="POLICY_DENY",
            policy="deny-delete")
    code, _ = curl(lab, CLI, env["pods"][(CLI, "good")], f"{URL}/items", "-X", "POST")
    assert code == "200"


def test_another_service_account_is_denied(lab: Lab, env: dict[str, Any]) -> None:
    _denied(lab, env, CLI, "bad", "/ok", reason="POLICY_DENIED", policy="allow-good")


def test_the_same_account_name_in_another_namespace_is_denied(lab: Lab, env: dict[str, Any]) -> None:
    _denied(lab, env, EVIL, "evil", "/ok", reason="POLICY_DENIED", policy="allow-good")


def test_a_direct_connection_to_the_pod_fails_closed(lab: Lab, env: dict[str, Any]) -> None:
    """The kernel does not judge AuthorizationPolicy: it lets a selected pod be reached only
    through a waypoint, so dialling the pod's address cannot bypass the policy."""
    for (ns, _), pod in env["pods"].items():
        code, _ = curl(lab, ns, pod, f"http://{env['srv_ip']}:8080/admin/direct")
        assert code == "000", pod  # the SYN is dropped at the pod
    assert "/admin/direct" not in echo_log(lab, env)


def test_each_policy_reports_accepted(lab: Lab, env: dict[str, Any]) -> None:
    def conditions() -> dict[str, Any] | None:
        found = {p["metadata"]["name"]: (p.get("status") or {}).get("conditions")
                 for p in lab.get("authorizationpolicies", SRV)}
        return found if all(found.values()) and len(found) == len(POLICIES) else None

    found = wait_for(conditions, timeout=20, what="the Accepted conditions")
    for name, [c] in found.items():
        assert (c["type"], c["status"], c["reason"]) == ("Accepted", "True", "Accepted"), name
