"""L4-only AuthorizationPolicy in the kernel, on the client's node (issue 14 item 1), through
real lab pods: the server on node1, the clients on node2. A DENY by namespace and an ALLOW by
ServiceAccount (and port) are judged by from_pod on node2: a denied caller gets a reset at
once (curl: "couldn't connect", not a timeout), node2 records a DROPPED flow naming the
policy, and node1 sees no packet of that connection (no SYN reached the server); the listed
ServiceAccount connects, straight to the pod (no waypoint: the server's node records it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, service, wait_for

pytestmark = pytest.mark.netns
SRV, CLI, EVIL = "akz-srv", "akz-cli", "akz-evil"
URL = f"http://srv.{SRV}/"
CURL_COULDNT_CONNECT = 7


def _policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "security.tulle.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": SRV}, "spec": spec}


WORKLOAD = {"matchLabels": {"app": "srv"}}
POLICIES = [
    _policy("deny-evil", {"selector": WORKLOAD, "action": "DENY",
                          "rules": [{"from": [{"source": {"namespaces": [EVIL]}}]}]}),
    _policy("allow-good", {"selector": WORKLOAD, "rules": [{
        "from": [{"source": {"serviceAccounts": [f"{CLI}/good", f"{EVIL}/good"]}}],
        "to": [{"operation": {"ports": ["8080"]}}]}]}),
]


def _client(ns: str, name: str, account: str) -> dict[str, Any]:
    d = deployment(ns, name, 1, node="node2")
    d["spec"]["template"]["spec"]["serviceAccountName"] = account
    return d


def curl(lab: Lab, ns: str, pod: str, sport: int = 0) -> tuple[int, str]:
    """curl's exit code and HTTP code; from source port ``sport`` (0: any)."""
    pinned = ("--local-port", str(sport)) if sport else ()
    proc = lab.exec(ns, pod, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    "--max-time", "3", *pinned, URL, check=False)
    return proc.returncode, proc.stdout.strip()


def flows(lab: Lab, sport: int) -> list[dict[str, Any]]:
    """Every recorded flow (any node, any verdict) of the connection from ``sport``."""
    out = lab.tulle("observe", "--last", "5000", "-o", "json").stdout
    found = []
    for line in out.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        f = record["flow"]
        tcp = (f.get("l4") or {}).get("TCP") or {}
        ports = {tcp.get("source_port"), tcp.get("destination_port")}
        if sport in ports:
            found.append({**f, "node_name": record.get("node_name") or f.get("node_name")})
    return found


@pytest.fixture(scope="module")
def env(lab: Lab) -> Iterator[dict[str, Any]]:
    apply(lab, namespace(SRV), namespace(CLI), namespace(EVIL),
          deployment(SRV, "srv", 1, node="node1"), service(SRV, "srv"),
          _client(CLI, "good", "good"), _client(CLI, "bad", "bad"), _client(EVIL, "evil", "good"))
    lab.wait_pods_ready(SRV, 1, timeout=90)
    lab.wait_pods_ready(CLI, 2, timeout=90)
    lab.wait_pods_ready(EVIL, 1, timeout=90)
    pods = {app: (ns, pods_of(lab, ns, app)[0]) for ns, app in
            ((CLI, "good"), (CLI, "bad"), (EVIL, "evil"))}
    for app, (ns, pod) in pods.items():
        wait_for(lambda ns=ns, pod=pod: curl(lab, ns, pod["metadata"]["name"])[1] == "200",
                 timeout=30, what=f"{app} served before any policy")
    apply(lab, *POLICIES)
    bad_ns, bad = pods["bad"]
    wait_for(lambda: curl(lab, bad_ns, bad["metadata"]["name"])[0] == CURL_COULDNT_CONNECT,
             timeout=30, what="the policies in force in the kernel")
    try:
        yield {"pods": pods, "srv_ip": pods_of(lab, SRV, "srv")[0]["status"]["podIP"]}
    finally:
        for p in POLICIES:
            lab.tulle("delete", "authorizationpolicy", p["metadata"]["name"], "-n", SRV,
                      check=False)


def _denied_at_the_client(lab: Lab, env: dict[str, Any], app: str, sport: int, reason: str,
                          policy: str) -> None:
    ns, pod = env["pods"][app]
    code, http = curl(lab, ns, pod["metadata"]["name"], sport)
    assert (code, http) == (CURL_COULDNT_CONNECT, "000")  # a reset, at once: not a timeout
    seen = wait_for(lambda: [f for f in flows(lab, sport) if f.get("verdict") == "DROPPED"],
                    timeout=10, what="the DROPPED flow on the client's node")
    (drop,) = seen
    assert drop["node_name"] == "node2" and drop["drop_reason_desc"] == reason
    assert drop["IP"]["source"] == pod["status"]["podIP"]
    assert drop["IP"]["destination"] == env["srv_ip"]  # judged after the Service chose it
    assert [(p["namespace"], p["name"], p["kind"]) for p in drop["egress_denied_by"]] == [
        (SRV, policy, "AuthorizationPolicy")]
    # Nothing of this connection on the server's node: no SYN reached node1 or the server
    # (node2 may also record the client socket's own state changes: the kernel tracer).
    assert {f["node_name"] for f in flows(lab, sport)} == {"node2"}


def test_the_listed_service_account_connects_directly(lab: Lab, env: dict[str, Any]) -> None:
    ns, pod = env["pods"]["good"]
    assert curl(lab, ns, pod["metadata"]["name"], 41100) == (0, "200")
    # Positive control for the denials below: this connection reached the server's node,
    # at the pod itself (not a waypoint).
    arrived = wait_for(lambda: [f for f in flows(lab, 41100) if f["node_name"] == "node1"],
                       timeout=10, what="the connection's flow on the server's node")
    assert all(f.get("verdict") != "DROPPED" for f in arrived)
    assert env["srv_ip"] in {f["IP"]["destination"] for f in arrived}


def test_deny_by_namespace_on_the_clients_node(lab: Lab, env: dict[str, Any]) -> None:
    _denied_at_the_client(lab, env, "evil", 41101, "POLICY_DENY", "deny-evil")


def test_deny_by_service_account_on_the_clients_node(lab: Lab, env: dict[str, Any]) -> None:
    _denied_at_the_client(lab, env, "bad", 41102, "POLICY_DENIED", "allow-good")


def test_dialling_the_pod_address_is_judged_the_same(lab: Lab, env: dict[str, Any]) -> None:
    ns, pod = env["pods"]["bad"]
    proc = lab.exec(ns, pod["metadata"]["name"], "curl", "-s", "--max-time", "3",
                    "--local-port", "41103", f"http://{env['srv_ip']}:8080/", check=False)
    assert proc.returncode == CURL_COULDNT_CONNECT
    ns, pod = env["pods"]["good"]
    direct = lab.exec(ns, pod["metadata"]["name"], "curl", "-s", "--max-time", "3",
                      f"http://{env['srv_ip']}:8080/", check=False)
    assert direct.returncode == 0 and json.loads(direct.stdout)["namespace"] == SRV


def test_status_says_the_kernel_enforces_them(lab: Lab, env: dict[str, Any]) -> None:
    def conditions() -> dict[str, Any] | None:
        found = {p["metadata"]["name"]: (p.get("status") or {}).get("conditions")
                 for p in lab.get("authorizationpolicies", SRV)}
        return found if all(found.values()) and len(found) == len(POLICIES) else None

    for name, [c] in wait_for(conditions, timeout=20, what="the conditions").items():
        assert c["status"] == "True", name
        assert "in the kernel on each client's node" in c["message"], name
