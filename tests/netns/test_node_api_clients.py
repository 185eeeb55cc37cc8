"""The node components are Kubernetes API clients: with the lab API server away, what they
have keeps working and they learn nothing; once it is back (a new process on the same fabric
address, started by the lab's supervisor) they reconnect on their own, without restarting,
and catch up."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from lab import procs
from lab.components import agent_health
from lab.state import LabPaths
from lab.store import Store

from .conftest import Lab

pytestmark = pytest.mark.netns

NS = "apiclients"
APP = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: {NS}, labels: {{app: client}}}}
spec:
  nodeName: node1
  containers: [{{name: echo, image: tulle/echo}}]
"""
LATE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "late", "namespace": NS},
    "spec": {"clusterIP": "10.96.200.7", "clusterIPs": ["10.96.200.7"], "ports": [{"port": 80}]},
}


def wait_for(check: Callable[[], Any], what: str, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last})")


def _resolves(lab: Lab, name: str) -> bool:
    done = lab.exec(NS, "client", "getent", "hosts", name, check=False)
    return done.returncode == 0 and "10.96.200.7" in done.stdout


def _health(paths: LabPaths, node: str) -> dict[str, Any]:
    return dict(json.loads(agent_health(paths, node).read_text()))


def test_node_components_reconnect_after_the_api_server_restarts(lab: Lab) -> None:
    paths = LabPaths.for_lab(lab.name)
    lab.apply(APP)
    lab.wait_pods_ready(NS, 1)
    records = {r.role: r for r in procs.load_records(paths.procs)}
    components = {
        role: rec.pid
        for role, rec in records.items()
        if role.split("-")[0] in ("agent", "waypoint", "dns")
    }
    apiserver = records["apiserver"]
    # Away: stopped, it holds its connections and answers nothing (and, alive, the lab's
    # supervisor leaves it be). A Service written to the lab's etcd meanwhile stays unknown.
    os.kill(apiserver.pid, signal.SIGSTOP)
    try:
        with Store(paths.store) as store:
            created, _ = store.apply(LATE)
        revision = int(created["metadata"]["resourceVersion"])
        time.sleep(1.5)
        assert not _resolves(lab, f"late.{NS}")
        assert all(_health(paths, n)["ready"] for n in ("node1", "node2"))  # nothing lost
    finally:
        # Then gone: killed, and restarted by the supervisor as a new process.
        os.kill(apiserver.pid, signal.SIGKILL)
    wait_for(
        lambda: any(
            r.role == "apiserver" and r.pid != apiserver.pid and procs.is_alive(r)
            for r in procs.load_records(paths.procs)
        ),
        "a new API server",
    )
    wait_for(lambda: _resolves(lab, f"late.{NS}"), "the DNS has the Service made while away")
    for node in ("node1", "node2"):
        wait_for(
            lambda n=node: _health(paths, n)["revision"] >= revision,
            f"the {node} agent caught up",
        )
    # Reconnected, not restarted: every node component is the process it was.
    after = {r.role: r for r in procs.load_records(paths.procs)}
    assert {role: after[role].pid for role in components} == components
    assert all(procs.is_alive(after[role]) for role in components)
    lab.tulle("delete", "namespace", NS)
