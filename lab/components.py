"""Where a lab's own components (a node's agent and waypoints, the identity service) keep their
files, and how to find their processes: the one place tests, benches, `tulle lab status` and the
relay ask, so that moving these components from lab-spawned processes to the pods of the
deploy/ manifests (issue 13; /work/notes/lab_install_design.md) changes this module only.

A spawned component (`tulle lab up`, lab/lifecycle.py) runs under a role name, with its record
in ``<lab>/procs/<role>.json`` and its output in ``<lab>/logs/<role>.log``. In a lab installed
from the manifests (lab.json ``"install": "manifests"``, lab/install.py) the agent and the
waypoint are DaemonSet pods: their files are where the manifests put them, seen through each
node's share of the machine (lab/podvolumes.py): /var/run/tulle is the node root's run/tulle,
/sys/fs/bpf/tulle is the node's pin directory's tulle/, the health file is in the agent pod's
emptyDir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from identity.system import SYSTEM_NAMESPACE
from lab import procs
from lab.cni_runtime import tulle_state_dir
from lab.state import LabPaths, read_json
from lab.state import pin_dir as _pin_root

__all__ = [
    "CA_ROLE",
    "Component",
    "agent_health",
    "component_log",
    "component_record",
    "l7_intake_socket",
    "node_state",
    "observer_socket",
    "pin_dir",
    "role",
]

Component = Literal["agent", "waypoint", "waypoint-standby", "ca"]
CA_ROLE = "controlplane"  # the identity service (`python -m controlplane`), one per lab
_PER_NODE = ("agent", "waypoint", "waypoint-standby")


def role(component: Component, node: str | None = None) -> str:
    """The process role of ``component`` (on ``node`` for the per-node ones): its record's and
    its log's name, and what `tulle lab status` lists."""
    if component == "ca":
        if node is not None:
            raise ValueError("the identity service is one per lab, not per node")
        return CA_ROLE
    if component not in _PER_NODE:
        raise ValueError(f"unknown lab component {component!r}")
    if not node:
        raise ValueError(f"the {component} runs per node: name the node")
    if component == "waypoint-standby":
        return f"waypoint-{node}-standby"
    return f"{component}-{node}"


def component_record(
    paths: LabPaths, component: Component, node: str | None = None
) -> procs.ProcRecord | None:
    """The process record of ``component`` (the supervisor rewrites it when it restarts the
    process, so a new pid shows a restart); None before it was started."""
    wanted = role(component, node)
    for rec in procs.load_records(paths.procs) if paths.procs.is_dir() else []:
        if rec.role == wanted:
            return rec
    return None


def component_log(paths: LabPaths, component: Component, node: str | None = None) -> Path:
    return paths.logs / f"{role(component, node)}.log"


def from_manifests(paths: LabPaths) -> bool:
    """Whether the lab's agents and waypoints are pods of deploy/'s DaemonSets."""
    return (read_json(paths.lab_file) or {}).get("install") == "manifests"


def _node_run_tulle(paths: LabPaths, node: str) -> Path:
    # The manifests' /var/run/tulle hostPath on this node (lab/podvolumes.py: var/run is run).
    return paths.root / "nodes" / node / "root" / "run" / "tulle"


def agent_health(paths: LabPaths, node: str) -> Path:
    """The node agent's ``--health-file`` (what `tulle lab status` and `identities` read).
    From the manifests: the freshest report naming ``node`` among the agent pods' emptyDirs
    (a pod's directory goes with the pod); a path that does not exist when there is none."""
    if not from_manifests(paths):
        return paths.health / f"{role('agent', node)}.json"
    best: tuple[float, Path] | None = None
    pods = paths.root / "pods"
    for report in pods.glob(f"{SYSTEM_NAMESPACE}_tulle-agent-*/volumes/health/agent.json"):
        try:
            data = json.loads(report.read_text())
        except (OSError, ValueError):
            continue  # being written, or the pod just went
        if isinstance(data, dict) and data.get("node") == node:
            when = float(data.get("time") or 0)
            if best is None or when > best[0]:
                best = (when, report)
    return best[1] if best else paths.root / "pods" / f"no-agent-pod-on-{node}.json"


def cni_state_dir(paths: LabPaths, node: str) -> str:
    """A spawned node agent's ``--cni-state-dir``: tulle-cni's records in a ``--cni chain``
    lab (lab/cni_runtime.py), empty (off) in a builtin one, whose pods have none."""
    if (read_json(paths.lab_file) or {}).get("cni") != "chain":
        return ""
    return str(tulle_state_dir(paths, node))


def observer_socket(paths: LabPaths, node: str) -> Path:
    """The node agent's ``--observer-socket`` (the relay's peer for that node)."""
    if from_manifests(paths):
        return _node_run_tulle(paths, node) / "observer.sock"
    return paths.root / f"observer-{node}.sock"


def node_state(paths: LabPaths, node: str) -> Path:
    """A node agent's ``--state-dir`` (its compile record, SVIDs, the waypoint lock), removed
    by ``tulle lab down``."""
    if from_manifests(paths):
        return _node_run_tulle(paths, node)
    return paths.root / "nodes" / node


def l7_intake_socket(paths: LabPaths, node: str) -> Path:
    """The agent's ``--l7-intake``, the waypoint's ``--flow-intake``."""
    if from_manifests(paths):
        return _node_run_tulle(paths, node) / "l7intake" / "flows.sock"
    return paths.root / "l7intake" / f"{node}.sock"  # a private (0700) directory


def pin_dir(paths: LabPaths, node: str) -> Path:
    """Where the node's agent pins its maps (its and its waypoint's ``--pin-dir``); from the
    manifests, the pod's /sys/fs/bpf/tulle in the node's share of bpffs."""
    if from_manifests(paths):
        return _pin_root(paths.name, node) / "tulle"
    return _pin_root(paths.name, node)
