"""The agent keeps its health-check node ports' table with its syncs: a LoadBalancer + Local
Service's port appears with the node's ready local endpoints, follows its EndpointSlices, and
goes with the Service."""

from __future__ import annotations

import threading
from typing import Any

from agent.healthcheck.table import HealthCheck
from agent.node_agent import Agent
from tests.unit.kube.conftest import Lab
from tests.unit.kube.test_agent_sync import RecordingDatapath
from tests.unit.kube.test_agent_sync import running as running  # the fixture
from tests.unit.kube.test_node_agent import wait_for


class RecordingHealthChecks:
    def __init__(self) -> None:
        self.tables: list[dict[int, HealthCheck]] = []
        self.lock = threading.Lock()

    def update(self, table: dict[int, HealthCheck]) -> None:
        with self.lock:
            self.tables.append(dict(table))

    def last(self) -> dict[int, HealthCheck] | None:
        with self.lock:
            return self.tables[-1] if self.tables else None


def lb_local(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.7.8",
                     "externalTrafficPolicy": "Local", "healthCheckNodePort": 31234,
                     "ports": [{"port": 80, "nodePort": 30080}]}}


def endpoints(service: str, *nodes: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-abc", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [f"10.244.{i + 1}.5"], "nodeName": node,
                           "conditions": {"ready": True}} for i, node in enumerate(nodes)],
            "ports": [{"port": 8080, "protocol": "TCP"}]}


def test_the_table_follows_services_and_their_local_endpoints(
    lab: Lab, running: tuple[Agent, RecordingDatapath]
) -> None:
    agent, _ = running
    checks = RecordingHealthChecks()
    agent.health_checks = checks  # type: ignore[assignment]
    lab.store.apply(lb_local("web"))
    wait_for(lambda: checks.last() == {31234: HealthCheck("default", "web", 0)},
             "the port, with no local endpoint")
    lab.store.apply(endpoints("web", "node1", "node2"))
    wait_for(lambda: checks.last() == {31234: HealthCheck("default", "web", 1)},
             "node1's one local endpoint")
    lab.store.delete("Service", "default", "web")
    wait_for(lambda: checks.last() == {}, "the port gone with its Service")
