"""A DaemonSet in the lab, driven with kubectl as on a cluster: the lab controller puts one
pod on each node, the kubelet runs it in the node's network namespace (hostNetwork) with the
downward API's env, ``$(VAR)`` expansion and a hostPath (the node's own: bound from its root
in the container's mount namespace, never made on the machine's /var/lib); ``kubectl get ds`` and ``rollout
status`` read the status the controller writes; a deleted pod comes back on its node; a
template change rolls node by node (a watch of the pods sees one node down at most); deleting
the DaemonSet removes its pods and their processes.

One scripted session in file order, in a namespace of its own (removed at the end), on the
session's lab.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.state import LabPaths

from .conftest import Lab
from .test_datapath import deployment, run_py, wait_for
from .test_kubectl_lab import Kubectl, Watch, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "ds-lab"
PORT = 18181  # in the nodes' own network namespaces: nothing of the lab's listens there
FETCH = """
import json, sys, urllib.request
body = urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/", timeout=5).read()
print(json.dumps(json.loads(body)))
"""


HOST_PATH = "/var/lib/tulle-ds-echo"  # the node's: under its root in the lab's state dir
MOUNT_PATH = "/run/ds-echo"


def daemonset(version: str, host_dir: Path) -> dict[str, Any]:
    container = {
        "name": "echo",
        "image": "tulle/echo",
        "command": [sys.executable, "-m", "lab.echo.server", "--port", "$(ECHO_PORT)"],
        "env": [
            {"name": "ECHO_PORT", "value": str(PORT)},
            {"name": "VERSION", "value": version},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
        "ports": [{"name": "http", "containerPort": PORT}],
        "volumeMounts": [{"name": "state", "mountPath": MOUNT_PATH}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "echo", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "echo"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "echo"}},
                "spec": {
                    "hostNetwork": True,
                    "containers": [container],
                    "volumes": [{"name": "state", "hostPath": {
                        "path": str(host_dir), "type": "DirectoryOrCreate"}}],
                },
            },
        },
    }


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-ds"), NS)


@pytest.fixture(scope="module")
def host_dir() -> Path:
    return Path(HOST_PATH)  # created by the kubelet, per node


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _by_node(k: Kubectl) -> dict[str, dict[str, Any]]:
    """Each node's echo pod, once every pod is ready and no node has two."""
    pods = k.pods(NS, "app=echo")
    nodes = {p["spec"].get("nodeName") for p in pods}
    if len(pods) != 2 or len(nodes) != 2 or not all(_ready(p) for p in pods):
        return {}
    return {p["spec"]["nodeName"]: p for p in pods}


def _answers(lab: Lab, client: str, ip: str) -> dict[str, Any]:
    return dict(run_py(lab, NS, client, FETCH, ip, PORT, timeout=30))


def _pids(lab: Lab, pods: list[str]) -> list[int]:
    records = LabPaths(lab.name, Path(lab.env["TULLE_STATE_DIR"]) / lab.name).procs / "pods"
    return [json.loads((records / f"{NS}_{name}_echo.json").read_text())["pid"] for name in pods]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def running(lab: Lab, k: Kubectl, host_dir: Path) -> dict[str, Any]:
    client = deployment(NS, "client", 1)
    out = k.out("apply", "-f", k.write("ds.yaml", [daemonset("v1", host_dir), client]))
    assert "daemonset.apps/echo created" in out
    k.out("rollout", "status", "deployment/client", "-n", NS, "--timeout=90s")
    pods = wait_for(lambda: _by_node(k), timeout=90, what="a ready echo pod on each node")
    client_pod = k.pods(NS, "app=client")[0]["metadata"]["name"]
    return {"pods": pods, "client": client_pod}


def test_one_pod_per_node_in_the_nodes_network_answering_on_its_ip(
    lab: Lab, k: Kubectl, running: dict[str, Any], host_dir: Path
) -> None:
    rolled = k.out("rollout", "status", "ds/echo", "-n", NS, "--timeout=60s")
    assert 'daemon set "echo" successfully rolled out' in rolled
    row = k.out("get", "ds", "echo", "-n", NS).splitlines()
    assert row[0].split()[:7] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                  "AVAILABLE", "NODE"]
    assert row[1].split()[:7] == ["echo", "2", "2", "2", "2", "2", "<none>"]
    nodes = {n["metadata"]["name"]: n for n in json.loads(k.out("get", "nodes", "-o", "json"))["items"]}
    assert set(running["pods"]) == set(nodes)
    for node, pod in running["pods"].items():
        internal = next(a["address"] for a in nodes[node]["status"]["addresses"]
                        if a["type"] == "InternalIP")
        assert pod["status"]["podIP"] == pod["status"]["hostIP"] == internal
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("DaemonSet", "echo", True)
        assert "controller-revision-hash" in pod["metadata"]["labels"]
        answer = _answers(lab, running["client"], internal)  # from a pod, to the node's IP
        assert answer["pod"] == pod["metadata"]["name"]
        # `tulle lab exec` into it lands in the node's network namespace, as the kubelet ran it.
        inside = lab.exec(NS, pod["metadata"]["name"], "ip", "-4", "-o", "addr").stdout
        assert f" {internal}/" in inside
    # The hostPath (DirectoryOrCreate), made before the start in each node's root only.
    root = LabPaths(lab.name, Path(lab.env["TULLE_STATE_DIR"]) / lab.name).root / "nodes"
    assert all((root / node / "root" / host_dir.relative_to("/")).is_dir()
               for node in running["pods"])
    assert not host_dir.exists()
    pid = _pids(lab, [running["pods"]["node1"]["metadata"]["name"]])[0]
    mounted = [line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    assert MOUNT_PATH in mounted
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"MY_NODE=node1" in environ and f"ECHO_PORT={PORT}".encode() in environ


def test_a_deleted_pod_is_recreated_on_its_node(lab: Lab, k: Kubectl, running: dict[str, Any]) -> None:
    gone = running["pods"]["node2"]["metadata"]["name"]
    k.out("delete", "pod", gone, "-n", NS)
    back = wait_for(lambda: (p := _by_node(k)) and p["node2"]["metadata"]["name"] != gone and p,
                    timeout=60, what="a new ready echo pod on node2")
    assert back["node1"]["metadata"]["name"] == running["pods"]["node1"]["metadata"]["name"]
    running["pods"] = back


def _watched_pods(lines: list[str]) -> list[dict[str, Any]]:
    """The watch events (``-o json --output-watch-events``: JSON documents one after another)."""
    text, events, decoder, at = "\n".join(lines), [], json.JSONDecoder(), 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return events
        try:
            event, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return events  # the last document is still arriving
        events.append(event)


def _ready_nodes_over_time(events: list[dict[str, Any]]) -> list[int]:
    pods: dict[str, tuple[str, bool]] = {}
    seen = []
    for event in events:
        obj = event["object"]
        name = obj["metadata"]["name"]
        if event["type"] == "DELETED":
            pods.pop(name, None)
        else:
            pods[name] = (obj["spec"].get("nodeName", ""), _ready(obj))
        seen.append(len({node for node, ready in pods.values() if ready}))
    return seen


def test_a_template_change_rolls_node_by_node(
    lab: Lab, k: Kubectl, running: dict[str, Any], host_dir: Path
) -> None:
    before = {p["metadata"]["labels"]["controller-revision-hash"] for p in running["pods"].values()}
    watch = Watch(k, "pods", "-n", NS, "-l", "app=echo", "-o", "json", "--output-watch-events")
    try:
        wait_for(lambda: len(_watched_pods(watch.lines)) >= 2, what="the watch's listing")
        k.out("apply", "-f", k.write("ds2.yaml", [daemonset("v2", host_dir)]))
        k.out("rollout", "status", "ds/echo", "-n", NS, "--timeout=120s")
        after = wait_for(lambda: _by_node(k), timeout=60, what="both pods ready after the roll")
        try:
            wait_for(lambda: _ready_nodes_over_time(_watched_pods(watch.lines))[-1] == 2,
                     what="the watch to see both nodes ready again")
        except AssertionError as err:
            ready = _ready_nodes_over_time(_watched_pods(watch.lines))
            stderr = watch.proc.stderr.read() if watch.proc.poll() is not None else ""
            raise AssertionError(f"{err}; ready nodes as watched: {ready}; watch exit "
                                 f"{watch.proc.poll()} {stderr}") from None
    finally:
        watch.stop()
    hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in after.values()}
    assert len(hashes) == 1 and hashes.isdisjoint(before)
    ready = _ready_nodes_over_time(_watched_pods(watch.lines))
    first_full = ready.index(2)  # the listing: both nodes ready before the change
    during = ready[first_full:]
    assert min(during) == 1, f"ready nodes as the watch saw them: {ready}"  # never 0
    downs = sum(1 for a, b in zip(during, during[1:], strict=False) if (a, b) == (2, 1))
    assert downs == 2, f"ready nodes as the watch saw them: {ready}"  # one node, then the other
    for node, pod in after.items():
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["VERSION"] == "v2", node
    running["pods"] = after


def test_deleting_the_daemonset_removes_its_pods_and_processes(
    lab: Lab, k: Kubectl, running: dict[str, Any]
) -> None:
    names = [p["metadata"]["name"] for p in running["pods"].values()]
    pids = _pids(lab, names)
    assert all(_alive(pid) for pid in pids)
    k.out("delete", "ds", "echo", "-n", NS)
    wait_for(lambda: not k.pods(NS, "app=echo"), timeout=60, what="the echo pods gone")
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=30, what="their processes gone")
    refused = lab.exec(NS, running["client"], "/usr/bin/python3", "-c", FETCH,
                       running["pods"]["node1"]["status"]["podIP"], str(PORT), check=False)
    assert refused.returncode != 0 and "Connection refused" in refused.stdout + refused.stderr
