"""Pods with volumes in the lab, through kubectl as on a cluster: the kubelet runs each of
their containers in a mount namespace of its own (lab/mountns.py's wrapper around
lab/podvolumes.py's binds). The same hostPath on node1 and node2 is each node's own (bound
from the node's root in the lab's state dir, never made on the machine); a readOnly mount
refuses writes (EROFS); an emptyDir outlives a container restart and goes with its pod; exec
probes and ``tulle lab exec`` see what the container sees at its mount paths.

One scripted session in file order, in a namespace of its own (removed at the end), on the
session's lab.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import wait_for
from .test_kubectl_lab import Kubectl, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "vol-lab"
HOST_PATH = "/var/lib/tulle-volume-test"  # each node's: never on the machine's /var/lib
STARTS = "/tmp/tulle-volume-test-starts"  # in the pod's emptyDir at /tmp, not the host's
# Says where it runs in the node's hostPath, counts its starts in the emptyDir, and exits
# (to be restarted) once asked to through the emptyDir.
SCRIPT = (f'echo "$NODE_NAME" > /run/data/who; echo start >> {STARTS}; '
          "while [ ! -e /tmp/die ]; do sleep 0.2; done; rm /tmp/die; exit 3")


def pod(name: str, node: str) -> dict[str, Any]:
    container = {
        "name": "app", "image": "busybox", "command": ["sh", "-c", SCRIPT],
        "volumeMounts": [{"name": "data", "mountPath": "/run/data"},
                         {"name": "data", "mountPath": "/run/data-ro", "readOnly": True},
                         {"name": "scratch", "mountPath": "/tmp"}],
        # Passes only inside the container's mount namespace: the host has no /run/data.
        "readinessProbe": {"exec": {"command": ["cat", "/run/data/who"]}, "periodSeconds": 1},
    }
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": node, "containers": [container],
                 "volumes": [{"name": "data", "hostPath": {"path": HOST_PATH,
                                                           "type": "DirectoryOrCreate"}},
                             {"name": "scratch", "emptyDir": {}}]},
    }


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-vol"), NS)


def _paths(lab: Lab) -> LabPaths:
    return LabPaths(lab.name, Path(lab.env["TULLE_STATE_DIR"]) / lab.name)


def _status(k: Kubectl, name: str) -> dict[str, Any]:
    return dict(json.loads(k.out("get", "pod", name, "-n", NS, "-o", "json")).get("status") or {})


def _ready(k: Kubectl, name: str, restarts: int = 0) -> bool:
    statuses = _status(k, name).get("containerStatuses") or [{}]
    return bool(statuses[0].get("ready")) and statuses[0].get("restartCount") == restarts


@pytest.fixture(scope="module")
def pods(lab: Lab, k: Kubectl) -> dict[str, str]:
    by_node = {"node1": "vol1", "node2": "vol2"}
    k.out("apply", "-f", k.write("pods.yaml", [pod(p, n) for n, p in by_node.items()]))
    for name in by_node.values():
        wait_for(lambda n=name: _ready(k, n), timeout=60, what=f"{name} ready (its exec probe)")
    return by_node


def test_the_same_host_path_is_each_nodes_own(lab: Lab, pods: dict[str, str]) -> None:
    for node, name in pods.items():
        assert lab.exec(NS, name, "cat", "/run/data/who").stdout == f"{node}\n"
        on_machine = _paths(lab).root / "nodes" / node / "root" / HOST_PATH.lstrip("/") / "who"
        assert on_machine.read_text() == f"{node}\n"
    assert not Path(HOST_PATH).exists()


def test_a_read_only_mount_refuses_writes(lab: Lab, pods: dict[str, str]) -> None:
    refused = lab.exec(NS, "vol1", "sh", "-c", "echo x > /run/data-ro/x", check=False)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr
    assert lab.exec(NS, "vol1", "cat", "/run/data-ro/who").stdout == "node1\n"  # readable


def test_an_empty_dir_outlives_a_container_restart(
    lab: Lab, k: Kubectl, pods: dict[str, str]
) -> None:
    lab.exec(NS, "vol1", "sh", "-c", "echo kept > /tmp/mark && touch /tmp/die")
    wait_for(lambda: _ready(k, "vol1", restarts=1), timeout=60, what="vol1 restarted and ready")
    last = _status(k, "vol1")["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 3
    assert lab.exec(NS, "vol1", "cat", "/tmp/mark").stdout == "kept\n"
    assert lab.exec(NS, "vol1", "cat", STARTS).stdout == "start\nstart\n"
    assert not Path(STARTS).exists()  # the pod's /tmp, not the host's
    # vol2's emptyDir is its own.
    assert lab.exec(NS, "vol2", "cat", STARTS).stdout == "start\n"


def test_a_deleted_pods_empty_dir_goes_with_it(lab: Lab, k: Kubectl, pods: dict[str, str]) -> None:
    pod_dir = _paths(lab).root / "pods" / f"{NS}_vol2"
    assert (pod_dir / "volumes" / "scratch" / Path(STARTS).name).is_file()
    k.out("delete", "pod", "vol2", "-n", NS, "--wait=true", "--timeout=60s")
    wait_for(lambda: not pod_dir.exists(), timeout=30, what="vol2's pod directory removed")
    # The node's hostPath is not the pod's: it stays (as on a node).
    node_path = _paths(lab).root / "nodes" / "node2" / "root" / HOST_PATH.lstrip("/")
    assert (node_path / "who").read_text() == "node2\n"


# Imports the project as a manifest's `python3 -m agent...` would, from `/` (an image's
# working directory), and says from where.
WHERE = ("import agent, sys, time; "
         "open('/tmp/where', 'w').write(agent.__file__ + ' ' + sys.prefix); time.sleep(3600)")


def test_a_container_runs_the_image_not_the_checkout(lab: Lab, k: Kubectl) -> None:
    """The lab's source root and venv are bound read-only at /run/tulle-image (the image's
    stand-in), so a pod whose emptyDir hides /tmp (the agent DaemonSet's) still runs python:
    in CI the checkout and its .venv live below /tmp ("python: No such file or directory")."""
    spec = pod("image", "node1")
    app = spec["spec"]["containers"][0]
    app["command"], app["args"] = ["python3", "-c", WHERE], []
    app["readinessProbe"] = {"exec": {"command": ["cat", "/tmp/where"]}, "periodSeconds": 1}
    k.out("apply", "-f", k.write("image.yaml", [spec]))
    try:
        wait_for(lambda: _ready(k, "image"), timeout=60, what="image pod imported agent")
        where = lab.exec(NS, "image", "cat", "/tmp/where").stdout.split()
        assert where[0] == "/run/tulle-image/src/agent/__init__.py"
        assert where[1] == "/run/tulle-image/venv"  # the lab's python is a venv's
        # `tulle lab exec` runs with the container's environment, as a CRI exec does.
        again = lab.exec(NS, "image", "python3", "-c", "import lab, os; print(lab.__file__, "
                         "os.getcwd())").stdout
        assert again == "/run/tulle-image/src/lab/__init__.py /\n"
        refused = lab.exec(NS, "image", "touch", "/run/tulle-image/src/x", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    finally:
        k.out("delete", "pod", "image", "-n", NS, "--wait=true", "--timeout=60s")
