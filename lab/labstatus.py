"""`tulle lab status`: the lab's plan as recorded, and how its nodes and processes are doing
(agent health reports, process liveness, the supervisor's restart back-off)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import network, procs
from lab.components import agent_health
from lab.state import LabPaths, read_json
from lab.topology import LabPlan, NodePlan, plan_lab

HEALTH_STALE_SECONDS = 10.0
RESTARTS_FILE = "restarts.json"  # in the health dir, written by the controller's supervisor


def load_plan(paths: LabPaths) -> LabPlan | None:
    data = read_json(paths.lab_file)
    if not data:
        return None
    return plan_lab(data["name"], int(data["nodes"]))


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    role: str
    pid: int
    alive: bool
    restarts: int = 0
    restart_in: float | None = None  # seconds of back-off left before the next restart


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    netns: str
    pod_cidr: str
    netns_present: bool
    agent_healthy: bool
    agent_detail: str


@dataclass(frozen=True, slots=True)
class LabStatus:
    name: str
    nodes: tuple[NodeStatus, ...]
    processes: tuple[ProcessStatus, ...]
    store: Path

    @property
    def healthy(self) -> bool:
        return all(n.netns_present and n.agent_healthy for n in self.nodes) and all(
            p.alive for p in self.processes
        )


def _node_health(paths: LabPaths, node: NodePlan) -> tuple[bool, str]:
    data = read_json(agent_health(paths, node.name))
    if not data:
        return False, "no health report yet"
    age = time.time() - float(data.get("time", 0))
    if age > HEALTH_STALE_SECONDS:
        return False, f"last report {age:.0f}s ago"
    detail = f"revision {data.get('revision')}, {data.get('objects', 0)} objects"
    tracing = data.get("tracing")
    if isinstance(tracing, dict):  # kernel connection tracing: which hooks it runs on
        detail += f", tracing on {len(tracing.get('hooks') or [])} hooks"
        if tracing.get("rtt"):  # sock_ops on the node's pod cgroup, or tcp_probe
            detail += f" (RTT from {tracing['rtt']})"
        if tracing.get("missing"):
            detail += f" (missing {', '.join(tracing['missing'])})"
        if tracing.get("failed_batches"):  # the feed goes on; its failures must show
            detail += (f", tracer: {tracing['failed_batches']} batches failed, last: "
                       f"{tracing.get('last_error')}")
    return bool(data.get("ready")), detail


def process_status(rec: procs.ProcRecord, restarts: dict[str, Any]) -> ProcessStatus:
    alive = procs.is_alive(rec)
    restart_at = restarts.get("restartAt")
    pending = None if alive or restart_at is None else max(0.0, restart_at - time.time())
    return ProcessStatus(rec.role, rec.pid, alive, int(restarts.get("restarts", 0)), pending)


def status(name: str) -> LabStatus | None:
    paths = LabPaths.for_lab(name)
    plan = load_plan(paths)
    if plan is None:
        return None
    present = set(network.lab_namespaces(plan.prefix))
    nodes = []
    for node in plan.nodes:
        healthy, detail = _node_health(paths, node)
        nodes.append(
            NodeStatus(
                node.name, node.netns, str(node.pod_cidr), node.netns in present, healthy, detail
            )
        )
    restarts = read_json(paths.health / RESTARTS_FILE) or {}
    processes = tuple(
        process_status(r, restarts.get(r.role) or {}) for r in procs.load_records(paths.procs)
    )
    return LabStatus(name, tuple(nodes), processes, paths.store)
