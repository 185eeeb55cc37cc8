"""bench/mtls/waypoints.py and client.py: CPU over a run (restarts detected), the process
tree, the loadgen command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.mtls import client
from bench.mtls.waypoints import Snapshot, cpu_used, process_tree, split_idle


def test_cpu_used_is_per_waypoint_and_per_thousand_requests() -> None:
    before = {"node1": Snapshot(10, 5.0), "node2": Snapshot(20, 1.0)}
    after = {"node1": Snapshot(10, 8.0), "node2": Snapshot(20, 1.06)}
    used = cpu_used(before, after, 10_000)
    assert used["waypoint_cpu_s"] == {"node1": 3.0, "node2": 0.06}
    assert used["vcpu_per_krps"] == {"node1": 0.3, "node2": pytest.approx(0.006)}


def test_cpu_used_is_none_for_a_restarted_or_missing_waypoint() -> None:
    before = {"node1": Snapshot(10, 5.0), "node2": Snapshot(None, 0.0)}
    after = {"node1": Snapshot(11, 0.2), "node2": Snapshot(None, 0.0)}
    used = cpu_used(before, after, 10_000)
    assert used["waypoint_cpu_s"] == {"node1": None, "node2": None}
    assert used["vcpu_per_krps"] == {"node1": None, "node2": None}
    # same PID but the counter went backwards: not the same process after all
    back = cpu_used({"node1": Snapshot(10, 5.0), "node2": Snapshot(20, 1.0)},
                    {"node1": Snapshot(10, 4.0), "node2": Snapshot(20, 1.0)}, 0)  # fmt: skip
    assert back["waypoint_cpu_s"]["node1"] is None
    assert back["vcpu_per_krps"]["node2"] is None  # no requests: nothing to divide by


def test_process_tree_finds_children_and_grandchildren() -> None:
    script = "import subprocess, sys; subprocess.run(['sleep', '5'])"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(100):
            tree = process_tree(os.getpid())
            if child.pid in tree and len(tree) >= 3:
                break
            subprocess.run(["sleep", "0.05"])
        assert tree[0] == os.getpid() and child.pid in tree
        assert len(tree) >= 3  # this process, the child, its sleep
    finally:
        for pid in reversed(process_tree(child.pid)):  # the grandchild first: ours, by PID
            os.kill(pid, signal.SIGKILL)
        child.wait()


def test_loadgen_argv_runs_the_repo_module_with_or_without_the_c_binary() -> None:
    argv = client.argv("http://10.96.210.10:80/1k", rate=1000, connections=10, warmup=3,
                       seconds=10, c_binary=Path("/tmp/x/loadgen"))  # fmt: skip
    assert argv[:2] == ["env", f"PYTHONPATH={client.REPO}"]
    assert argv[2:5] == [sys.executable, "-m", "bench.mtls.loadgen"]
    assert argv[-2:] == ["--c-binary", "/tmp/x/loadgen"]
    plain = client.argv("http://x/", rate=1, connections=1, warmup=0, seconds=1, c_binary=None)
    assert "--c-binary" not in plain
    assert (client.REPO / "bench" / "mtls" / "loadgen.py").is_file()


def test_split_idle_separates_the_selector_wait_from_the_work() -> None:
    raw = (
        "<module> (node.py:1);run (asyncio/base_events.py:10);"
        "EpollSelector.select (selectors.py:468) 60\n"
        "<module> (node.py:1);Handle._run (asyncio/events.py:80);"
        "feed (l7proxy/h1.py:50) 30\n"
        "<module> (node.py:1);select (selectors.py:415) 10\n"
        "watch (kube.py:5);SSLSocket.read (ssl.py:1169) 20\n"
        "not a stack line\n"
    )
    idle, busy = split_idle(raw)
    assert idle == 75.0  # 90 of 120
    assert busy.splitlines() == [raw.splitlines()[1]]
    assert split_idle("") == (0.0, "")
