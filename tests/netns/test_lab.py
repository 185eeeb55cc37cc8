"""The lab itself: bring-up and teardown, cross-node pod traffic, echo, DNS, exec, restarts."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lab import cgroups, labstatus, lifecycle, procs
from lab.state import LabPaths

from .conftest import Lab

pytestmark = pytest.mark.netns

APP = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
        - name: echo
          image: tulle/echo
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
"""


@pytest.fixture(scope="module")
def shop(lab: Lab) -> list[dict]:
    lab.apply(APP)
    pods = lab.wait_pods_ready("shop", 2)
    assert {p["spec"]["nodeName"] for p in pods} == {"node1", "node2"}, "replicas should spread"
    return pods


def _curl_json(lab: Lab, ns: str, pod: str, url: str) -> dict:
    out = lab.exec(ns, pod, "curl", "-s", "--max-time", "5", url).stdout
    return json.loads(out)


def test_pod_to_pod_across_nodes_gets_echo_json(lab: Lab, shop: list[dict]) -> None:
    a, b = sorted(shop, key=lambda p: p["spec"]["nodeName"])
    body = _curl_json(
        lab, "shop", a["metadata"]["name"], f"http://{b['status']['podIP']}:8080/hello?x=1"
    )
    assert body["path"] == "/hello?x=1"
    assert body["pod"] == b["metadata"]["name"]
    assert body["namespace"] == "shop"
    assert body["method"] == "GET"
    assert "curl" in body["headers"]["User-Agent"][0]


def test_echo_special_paths_inside_the_lab(lab: Lab, shop: list[dict]) -> None:
    a, b = sorted(shop, key=lambda p: p["spec"]["nodeName"])
    src, ip = a["metadata"]["name"], b["status"]["podIP"]
    code = lab.exec(
        "shop",
        src,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        f"http://{ip}:8080/status/418",
    ).stdout
    assert code == "418"
    headers = lab.exec(
        "shop",
        src,
        "curl",
        "-s",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        "X-Echo-Set-Header: X-Lab: yes",
        f"http://{ip}:8080/",
    ).stdout
    assert "x-lab: yes" in headers.lower()
    started = time.monotonic()
    _curl_json(lab, "shop", src, f"http://{ip}:8080/?delay=300ms")
    assert time.monotonic() - started >= 0.3


def test_endpointslice_lists_both_ready_pods_with_resolved_named_port(
    lab: Lab, shop: list[dict]
) -> None:
    slices = lab.get("endpointslices", "shop")
    assert len(slices) == 1
    slc = slices[0]
    assert slc["metadata"]["labels"]["kubernetes.io/service-name"] == "echo"
    assert slc["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    ips = sorted(a for ep in slc["endpoints"] for a in ep["addresses"])
    assert ips == sorted(p["status"]["podIP"] for p in shop)
    assert all(ep["conditions"]["ready"] for ep in slc["endpoints"])


@pytest.mark.parametrize(
    "name", ["echo", "echo.shop", "echo.shop.svc", "echo.shop.svc.cluster.local"]
)
def test_service_names_resolve_in_pods(lab: Lab, shop: list[dict], name: str) -> None:
    svc = lab.get("services", "shop")[0]
    out = lab.exec("shop", shop[0]["metadata"]["name"], "getent", "hosts", name).stdout
    assert out.split()[0] == svc["spec"]["clusterIP"]


def test_unknown_names_do_not_resolve(lab: Lab, shop: list[dict]) -> None:
    proc = lab.exec(
        "shop", shop[0]["metadata"]["name"], "getent", "hosts", "nope.shop", check=False
    )
    assert proc.returncode != 0


def test_lab_exec_passes_env_and_exit_code(lab: Lab, shop: list[dict]) -> None:
    pod = shop[0]["metadata"]["name"]
    out = lab.exec("shop", pod, "sh", "-c", "echo $POD_NAME $NAMESPACE $POD_IP").stdout.split()
    assert out == [pod, "shop", shop[0]["status"]["podIP"]]
    assert lab.exec("shop", pod, "sh", "-c", "exit 7", check=False).returncode == 7
    missing = lab.tulle("lab", "exec", "-n", "shop", "no-such-pod", "--", "true", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_pod_process_restarts_after_it_dies(lab: Lab, shop: list[dict]) -> None:
    pod = shop[0]
    name = pod["metadata"]["name"]
    record_dir = LabPaths.for_lab(lab.name).procs / "pods"
    (rec,) = [r for r in procs.load_records(record_dir) if r.role == f"shop_{name}_echo"]
    os.kill(rec.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current = next(p for p in lab.get("pods", "shop") if p["metadata"]["name"] == name)
        statuses = current["status"]["containerStatuses"]
        if statuses[0]["restartCount"] >= 1 and statuses[0]["ready"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"pod {name} did not restart: {current['status']}")
    (new,) = [r for r in procs.load_records(record_dir) if r.role == f"shop_{name}_echo"]
    assert new.pid != rec.pid
    other = next(p for p in shop if p["metadata"]["name"] != name)
    body = _curl_json(
        lab, "shop", other["metadata"]["name"], f"http://{pod['status']['podIP']}:8080/again"
    )
    assert body["pod"] == name


def test_deleting_a_deployment_removes_its_pods_and_sandboxes(lab: Lab) -> None:
    lab.apply(
        APP.replace("name: echo, namespace: shop}", "name: gone, namespace: shop}", 1)
        .replace("app: echo", "app: gone")
        .split("---\napiVersion: v1\nkind: Service")[0]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        gone = [p for p in lab.get("pods", "shop") if p["metadata"]["labels"]["app"] == "gone"]
        if len(gone) == 2 and all(p.get("status", {}).get("podIP") for p in gone):
            break
        time.sleep(0.2)
    names = [p["metadata"]["name"] for p in gone]
    lab.tulle("delete", "deployment", "gone", "-n", "shop")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [p for p in lab.get("pods", "shop") if p["metadata"]["name"] in names]
        ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        if not left and not any(f"pod-shop-{n}" in ns for n in names):
            return
        time.sleep(0.2)
    raise AssertionError(f"pods {names} or their netns still present")


def _ready_pods(lab: Lab, app: str) -> list[dict]:
    return [
        p
        for p in lab.get("pods", "shop")
        if p["metadata"]["labels"].get("app") == app
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions", [])
        )
    ]


def _wait(what: str, check, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what} not seen within {timeout}s")


def test_pods_keep_running_while_the_api_server_restarts(lab: Lab, shop: list[dict]) -> None:
    """The controller reaches the cluster only through the API server: when that dies, every
    pod keeps its processes; once it is back (restarted by the supervisor, same address) the
    controller's watches resume and it reconciles what changed."""
    steady = (
        APP.replace("name: echo, namespace: shop}", "name: steady, namespace: shop}", 1)
        .replace("app: echo", "app: steady")
        .split("---\napiVersion: v1\nkind: Service")[0]
        .split("---\n", 1)[1]
    )
    paths = LabPaths.for_lab(lab.name)
    lab.apply(steady.replace("replicas: 2", "replicas: 1"))
    (first,) = _wait("a ready steady pod", lambda: _ready_pods(lab, "steady"))
    name = first["metadata"]["name"]
    (container,) = [
        r for r in procs.load_records(paths.procs / "pods") if r.role == f"shop_{name}_echo"
    ]
    (controller,) = [r for r in procs.load_records(paths.procs) if r.role == "controller"]
    (apiserver,) = [r for r in procs.load_records(paths.procs) if r.role == "apiserver"]
    try:
        os.kill(apiserver.pid, signal.SIGKILL)
        _wait(
            "the API server restarted",
            lambda: any(
                r.role == "apiserver" and r.pid != apiserver.pid and procs.is_alive(r)
                for r in procs.load_records(paths.procs)
            ),
        )
        # A live process is not yet a listening one: apply once the restarted server answers.
        _wait(
            "the API server answering",
            lambda: lab.tulle("get", "namespaces", check=False, timeout=10).returncode == 0,
        )
        lab.apply(steady)  # two replicas now
        pods = _wait(
            "two ready steady pods",
            lambda: len(_ready_pods(lab, "steady")) == 2 and _ready_pods(lab, "steady"),
        )
        assert name in {p["metadata"]["name"] for p in pods}  # the first pod was kept
        kept = next(p for p in pods if p["metadata"]["name"] == name)
        assert kept["status"]["containerStatuses"][0]["restartCount"] == 0
        assert procs.is_alive(container) and procs.is_alive(controller)
    finally:
        lab.tulle("delete", "deployment", "steady", "-n", "shop")


def test_the_controller_never_opens_the_store(lab: Lab, shop: list[dict]) -> None:
    """The controller, kubelet and Gateway status controller reach the cluster through the
    API server only: no file descriptor of the controller process is the store."""
    paths = LabPaths.for_lab(lab.name)
    (controller,) = [r for r in procs.load_records(paths.procs) if r.role == "controller"]
    fd_dir = Path(f"/proc/{controller.pid}/fd")
    opened = set()
    for fd in fd_dir.iterdir():
        try:
            opened.add(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    assert not [f for f in opened if f.startswith(str(paths.store))], opened
    (apiserver,) = [r for r in procs.load_records(paths.procs) if r.role == "apiserver"]
    served = {os.readlink(fd) for fd in Path(f"/proc/{apiserver.pid}/fd").iterdir()}
    assert str(paths.store) in served  # the check can see a store when it is open


def test_lab_up_then_down_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "test" + secrets.token_hex(3)
    monkeypatch.setenv("TULLE_STATE_DIR", str(tmp_path))
    try:
        lifecycle.up(name, 1, lambda _m: None)
        st = labstatus.status(name)
        assert st is not None and st.healthy
        roles = sorted(p.role for p in st.processes)
        assert roles == [
            "agent-node1",
            "apiserver",
            "controller",
            "controlplane",
            "dns-node1",
            "relay",
            "waypoint-node1",
            "waypoint-node1-standby",  # a warm standby (l7proxy/standby.py)
        ]
        records = procs.load_records(LabPaths.for_lab(name).procs)
        assert (cgroups.node_cgroup(name, "node1") / cgroups.WAYPOINT).is_dir()
    finally:
        lifecycle.down(name, lambda _m: None)
    assert not cgroups.lab_cgroup(name).exists()  # the node's subtree, its pods' and waypoint's
    # tulle/ itself too, unless another tree (a fixture's, another lab's) is still below it
    assert not cgroups.ROOT.exists() or any(p.is_dir() for p in cgroups.ROOT.iterdir())
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"tulle-{name}-" not in ns
    assert not any(procs.is_alive(r) for r in records)
    assert not (tmp_path / name).exists()
    assert not list(Path("/etc/netns").glob(f"tulle-{name}-*"))
    # A second down is a no-op, not an error.
    assert lifecycle.down(name, lambda _m: None) == []
