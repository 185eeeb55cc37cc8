"""The lab's cgroup tree (lab.cgroups) in a live lab: each node's agent traces RTT on its node's
subtree, every pod process (containers and `tulle lab exec`) runs in its pod's cgroup below
its node's, the waypoint in its node's, and a deleted pod's cgroup goes with it. That the
whole tree goes at `tulle lab down`: tests/netns/test_lab.py and the session leak check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab import cgroups, components, procs
from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import apply, deployment, namespace, pods_of, wait_for

pytestmark = pytest.mark.netns

NS = "cgs"


def cgroup_of(pid: int | str) -> Path:
    text = Path(f"/proc/{pid}/cgroup").read_text()
    found = re.search(r"^0::(.*)$", text, re.M)
    assert found, text
    return Path(str(cgroups.CGROUP_V2) + found.group(1))


def test_pods_run_in_their_cgroup_below_their_nodes(lab: Lab) -> None:
    apply(lab, namespace(NS), deployment(NS, "a", 1, node="node1"),
          deployment(NS, "b", 1, node="node2"))
    lab.wait_pods_ready(NS, 2, timeout=90)
    paths = LabPaths.for_lab(lab.name)
    records = {r.role: r for r in procs.load_records(paths.procs)}
    pod_records = {r.role: r for r in procs.load_records(paths.procs / "pods")}
    for node, app in (("node1", "a"), ("node2", "b")):
        node_cg = cgroups.node_cgroup(lab.name, node)
        agent = records[components.role("agent", node)]
        assert agent.argv[agent.argv.index("--pod-cgroup") + 1] == str(node_cg)
        assert cgroup_of(records[components.role("waypoint", node)].pid) == node_cg / cgroups.WAYPOINT
        assert cgroup_of(agent.pid) != node_cg and node_cg not in cgroup_of(agent.pid).parents
        pod = pods_of(lab, NS, app)[0]["metadata"]["name"]
        want = cgroups.pod_cgroup(lab.name, node, NS, pod)
        assert want.parent == cgroups.kubepods_cgroup(lab.name, node)  # below the agent's
        assert node_cg in want.parents
        assert cgroup_of(pod_records[f"{NS}_{pod}_{app}"].pid) == want
        # `tulle lab exec` joins the pod's cgroup before the command runs.
        out = lab.exec(NS, pod, "cat", "/proc/self/cgroup").stdout
        assert f"0::/{want.relative_to(cgroups.CGROUP_V2)}\n" in out, out

    gone = cgroups.pod_cgroup(lab.name, "node2", NS, pods_of(lab, NS, "b")[0]["metadata"]["name"])
    lab.tulle("delete", "deployment", "b", "-n", NS)
    wait_for(lambda: not gone.exists(), timeout=30, what=f"{gone} removed with its pod")
    assert cgroups.kubepods_cgroup(lab.name, "node2").is_dir()  # the node's stays
