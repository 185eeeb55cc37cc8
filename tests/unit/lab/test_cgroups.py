"""The lab's cgroup tree, its pure parts: where each node's and pod's cgroup is, the wrapper
that joins a cgroup before running anything, and that the kubelet starts a pod's containers
through it. In the kernel: tests/netns/test_lab_cgroups.py, tests/bpf/test_tracer_sockops.py."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab import cgroups, procs
from lab.kubelet import ContainerRuntime, Kubelet, PodRuntime
from lab.state import LabPaths
from lab.topology import plan_lab


def test_each_pod_sits_below_its_node_below_its_lab() -> None:
    pod = cgroups.pod_cgroup("lab1", "node2", "shop", "web-1")
    assert pod == Path("/sys/fs/cgroup/unified/tulle/lab1/node2/kubepods.slice/shop_web-1")
    assert pod.parent == cgroups.kubepods_cgroup("lab1", "node2")
    assert pod.parent.parent == cgroups.node_cgroup("lab1", "node2")
    assert pod.parent.parent.parent == cgroups.lab_cgroup("lab1")
    assert cgroups.node_cgroup("lab1", "node2") / cgroups.WAYPOINT != pod  # no pod name is it


def test_the_wrapper_joins_the_cgroup_then_execs_the_command_unchanged(tmp_path: Path) -> None:
    """Run for real against a stand-in directory: the shell writes "0" (itself) to
    cgroup.procs, then execs argv with its arguments intact (spaces, quotes, $)."""
    (tmp_path / "cgroup.procs").write_text("")
    argv = cgroups.in_cgroup(tmp_path, ["printf", "%s|", "a b", "'q'", "$HOME"])
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    assert out == "a b|'q'|$HOME|"
    assert (tmp_path / "cgroup.procs").read_text() == "0\n"
    assert cgroups.in_cgroup(None, ["true"]) == ["true"]


def test_a_failed_join_runs_nothing(tmp_path: Path) -> None:
    argv = cgroups.in_cgroup(tmp_path / "absent", ["sh", "-c", "echo ran"])
    out = subprocess.run(argv, capture_output=True, text=True)
    assert out.returncode != 0 and "ran" not in out.stdout


@pytest.mark.parametrize("path", ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/tulle",
                                  "/sys/fs/cgroup/unified/other/x", "/tmp/tulle/x"])
def test_make_creates_nothing_outside_the_labs_tree(path: str) -> None:
    with pytest.raises(ValueError, match="not below"):
        cgroups.make(Path(path))


def test_remove_of_an_absent_tree_is_a_no_op(tmp_path: Path) -> None:
    assert cgroups.remove(tmp_path / "absent") == []


def test_the_kubelet_starts_containers_in_the_pods_cgroup(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    paths = LabPaths("t", tmp_path)
    paths.make_dirs()
    kubelet = Kubelet(plan_lab("t", 1), paths, None, probe=lambda node, veth: True)  # type: ignore[arg-type]
    spawned: list[list[str]] = []

    def spawn(role: str, argv: list[str], **kw: Any) -> tuple[None, None]:
        spawned.append(list(argv))
        return None, None

    monkeypatch.setattr(procs, "spawn", spawn)
    cg = cgroups.pod_cgroup("t", "node1", "shop", "p")
    for cgroup in (cg, None):
        rt = PodRuntime("uid", "shop", "p", plan_lab("t", 1).nodes[0], "ns",
                        ipaddress.IPv4Address("10.244.1.2"), "Always", [], cgroup=cgroup)
        kubelet._start_container(rt, ContainerRuntime("c", ("srv", "--x"), {}, ()))
    assert spawned[0] == cgroups.in_cgroup(cg, ["ip", "netns", "exec", "ns", "srv", "--x"])
    assert spawned[0][:2] == ["sh", "-c"]
    assert spawned[1] == ["ip", "netns", "exec", "ns", "srv", "--x"]  # no cgroups: as before


def test_the_tulle_cgroup_goes_only_once_nothing_is_below_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tulle"
    monkeypatch.setattr(cgroups, "ROOT", root)
    assert cgroups.remove_root_if_empty() is False  # never made: nothing to do
    (root / "other-lab").mkdir(parents=True)
    assert cgroups.remove_root_if_empty() is False  # another lab's tree stays, and so does tulle/
    assert (root / "other-lab").is_dir()
    (root / "other-lab").rmdir()
    assert cgroups.remove_root_if_empty() is True
    assert not root.exists()
