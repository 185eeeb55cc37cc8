"""lab/components.py: where the lab's own components keep their files. Spawn mode gives the
paths `tulle lab up` has always used (what the netns tier and the benches read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.files import write_json_atomic
from lab import components
from lab.state import LabPaths


@pytest.fixture
def paths(tmp_path: Path) -> LabPaths:
    return LabPaths(name="lab7", root=tmp_path / "lab7")


def test_paths_are_the_spawned_components_flags(paths: LabPaths) -> None:
    root = paths.root
    assert components.agent_health(paths, "node1") == root / "health" / "agent-node1.json"
    assert components.observer_socket(paths, "node2") == root / "observer-node2.sock"
    assert components.node_state(paths, "node1") == root / "nodes" / "node1"
    assert components.l7_intake_socket(paths, "node1") == root / "l7intake" / "node1.sock"
    assert components.pin_dir(paths, "node1") == Path("/sys/fs/bpf/tulle/lab7/node1")
    assert components.component_log(paths, "waypoint", "node1") == root / "logs" / "waypoint-node1.log"
    assert components.component_log(paths, "ca") == root / "logs" / "controlplane.log"


@pytest.mark.parametrize(("component", "node", "want"), [
    ("agent", "node1", "agent-node1"),
    ("waypoint", "node2", "waypoint-node2"),
    ("waypoint-standby", "node2", "waypoint-node2-standby"),
    ("ca", None, "controlplane"),
])
def test_roles(component: components.Component, node: str | None, want: str) -> None:
    assert components.role(component, node) == want


@pytest.mark.parametrize(("component", "node", "error"), [
    ("agent", None, "runs per node"),
    ("waypoint", "", "runs per node"),
    ("ca", "node1", "one per lab"),
    ("relay", "node1", "unknown lab component"),
])
def test_a_wrong_role_request_is_refused(component: str, node: str | None, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        components.role(component, node)  # type: ignore[arg-type]


def test_the_record_is_the_components_own_and_follows_a_restart(paths: LabPaths) -> None:
    assert components.component_record(paths, "agent", "node1") is None  # lab not up
    paths.make_dirs()
    for role, pid in (("agent-node1", 11), ("agent-node10", 12), ("waypoint-node1", 13)):
        write_json_atomic(paths.procs / f"{role}.json", {
            "role": role, "pid": pid, "start_time": 1, "argv": ["x"], "log": "l"})
    rec = components.component_record(paths, "agent", "node1")
    assert rec is not None and (rec.role, rec.pid) == ("agent-node1", 11)
    assert components.component_record(paths, "waypoint-standby", "node1") is None
    write_json_atomic(paths.procs / "agent-node1.json", {
        "role": "agent-node1", "pid": 21, "start_time": 2, "argv": ["x"], "log": "l"})
    rec = components.component_record(paths, "agent", "node1")
    assert rec is not None and rec.pid == 21


def _manifests(paths: LabPaths) -> None:
    paths.root.mkdir(parents=True)
    write_json_atomic(paths.lab_file, {"name": "lab7", "nodes": 2, "install": "manifests"})


def test_from_the_manifests_paths_are_the_daemonset_s_in_the_node_root(paths: LabPaths) -> None:
    _manifests(paths)
    run_tulle = paths.root / "nodes" / "node1" / "root" / "run" / "tulle"
    assert components.from_manifests(paths)
    assert components.observer_socket(paths, "node1") == run_tulle / "observer.sock"
    assert components.node_state(paths, "node1") == run_tulle
    assert components.l7_intake_socket(paths, "node1") == run_tulle / "l7intake" / "flows.sock"
    assert components.pin_dir(paths, "node1") == Path("/sys/fs/bpf/tulle/lab7/node1/tulle")


def test_from_the_manifests_health_is_the_freshest_report_naming_the_node(
    paths: LabPaths,
) -> None:
    _manifests(paths)
    assert not components.agent_health(paths, "node1").exists()  # no agent pod yet

    def report(pod: str, node: str, when: float, namespace: str = "tulle-system") -> Path:
        path = paths.root / "pods" / f"{namespace}_{pod}" / "volumes" / "health" / "agent.json"
        path.parent.mkdir(parents=True)
        write_json_atomic(path, {"node": node, "time": when, "ready": True})
        return path

    report("tulle-agent-aaaaa", "node2", 300.0)
    old = report("tulle-agent-bbbbb", "node1", 100.0)
    assert components.agent_health(paths, "node1") == old
    new = report("tulle-agent-ccccc", "node1", 200.0)  # the replacement pod, during a roll
    assert components.agent_health(paths, "node1") == new
    bad = paths.root / "pods" / "tulle-system_tulle-agent-ddddd" / "volumes" / "health"
    bad.mkdir(parents=True)
    (bad / "agent.json").write_text("{half")  # being written: skipped
    assert components.agent_health(paths, "node1") == new
    # another namespace's pod of the same name is not the agent
    report("tulle-agent-eeeee", "node1", 900.0, namespace="default")
    assert components.agent_health(paths, "node1") == new
