"""Where a lab's own components (a node's agent and waypoints, the identity service) keep their
files, and how to find their processes: the one place tests, benches, `tulle lab status` and the
relay ask, so that moving these components from lab-spawned processes to the pods of the
deploy/ manifests (issue 13; /work/notes/lab_install_design.md) changes this module only.

Today every component is spawned by `tulle lab up` (lab/lifecycle.py) under a role name, with
its record in ``<lab>/procs/<role>.json`` and its output in ``<lab>/logs/<role>.log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lab import procs
from lab.state import LabPaths
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


def agent_health(paths: LabPaths, node: str) -> Path:
    """The node agent's ``--health-file`` (what `tulle lab status` and `identities` read)."""
    return paths.health / f"{role('agent', node)}.json"


def observer_socket(paths: LabPaths, node: str) -> Path:
    """The node agent's ``--observer-socket`` (the relay's peer for that node)."""
    return paths.root / f"observer-{node}.sock"


def node_state(paths: LabPaths, node: str) -> Path:
    """A node agent's ``--state-dir`` (its compile record, SVIDs, the waypoint lock), removed
    by ``tulle lab down``."""
    return paths.root / "nodes" / node


def l7_intake_socket(paths: LabPaths, node: str) -> Path:
    """The agent's ``--l7-intake``, the waypoint's ``--flow-intake``."""
    return paths.root / "l7intake" / f"{node}.sock"  # a private (0700) directory


def pin_dir(paths: LabPaths, node: str) -> Path:
    """Where the node's agent pins its maps (its and its waypoint's ``--pin-dir``)."""
    return _pin_root(paths.name, node)
