"""What a kubelet does with a Pod beyond running its containers, in the lab through kubectl
as on a cluster: init containers run one after another before the app (the second writes a
file the app reads); a failing one keeps the pod in Init with the STATUS kubectl prints; a
readiness probe keeps the pod out of its Service's EndpointSlice until it passes (and takes
it out again); a failing liveness probe restarts the container (its last run's exit code
143, SIGTERM's); env comes from a Secret (its stringData stored as data) and a ConfigMap,
and a missing key keeps the container from starting.

One scripted session in a namespace of its own (removed at the end), on the session's lab.
Pods are bound with ``nodeName``; files the containers share with the test are under a
temporary directory of the host (a lab container runs on the host's filesystem).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import wait_for
from .test_kubectl_lab import Kubectl, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "life-lab"


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {"nodeName": "node1", "containers": containers, **spec}}


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-life"), NS)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pod-lifecycle")


def _get(k: Kubectl, name: str) -> dict[str, Any]:
    return dict(json.loads(k.out("get", "pod", name, "-n", NS, "-o", "json")))


def _row(k: Kubectl, name: str) -> list[str]:
    """``kubectl get pod``'s row: NAME READY STATUS RESTARTS AGE."""
    lines = k.out("get", "pod", name, "-n", NS).splitlines()
    assert lines[0].split()[:4] == ["NAME", "READY", "STATUS", "RESTARTS"]
    return lines[1].split()


def _ready_endpoints(lab: Lab, svc: str) -> int:
    slices = [s for s in lab.get("endpointslices", NS)
              if s["metadata"]["labels"].get("kubernetes.io/service-name") == svc]
    return sum(1 for s in slices for ep in s.get("endpoints") or []
               if ep["conditions"].get("ready"))


def test_init_containers_run_in_order_before_the_app(k: Kubectl, shared: Path) -> None:
    trace, msg = shared / "trace", shared / "msg"
    k.out("apply", "-f", k.write("init.yaml", [pod("inits", [
        sh("app", f"cat {msg} >> {trace}; echo app >> {trace}; exec sleep 600")],
        initContainers=[sh("first", f"sleep 3; echo first >> {trace}"),
                        sh("second", f"echo hello-from-init > {msg}; echo second >> {trace}")],
    )]))
    waiting = wait_for(lambda: (r := _row(k, "inits"))[2].startswith("Init:") and r,
                       timeout=60, what="the pod in Init")
    assert waiting[2] in ("Init:0/2", "Init:1/2")
    status = wait_for(lambda: (p := _get(k, "inits"))["status"].get("phase") == "Running" and p,
                      timeout=60, what="the app running")["status"]
    # Running means the app's process started, not that its script has written yet
    wait_for(lambda: "app" in trace.read_text().split(), timeout=30, what="the app's line")
    assert trace.read_text().split() == ["first", "second", "hello-from-init", "app"]
    assert [s["state"]["terminated"]["reason"] for s in status["initContainerStatuses"]] == [
        "Completed", "Completed"]
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "True"
    assert _row(k, "inits")[2] == "Running"


def test_a_failing_init_container_keeps_the_pod_in_init(k: Kubectl, shared: Path) -> None:
    k.out("apply", "-f", k.write("init-fail.yaml", [pod(
        "broken-init", [sh("app", f"touch {shared}/broken-app-ran; exec sleep 600")],
        initContainers=[sh("ok", "true"), sh("fails", "echo no >&2; exit 3")])]))
    row = wait_for(lambda: (r := _row(k, "broken-init"))[2] == "Init:CrashLoopBackOff" and r,
                   timeout=60, what="Init:CrashLoopBackOff")
    assert row[1] == "0/1" and int(row[3]) >= 1  # RESTARTS: the init container's
    status = _get(k, "broken-init")["status"]
    assert status["phase"] == "Pending"
    fails = status["initContainerStatuses"][1]
    assert fails["lastState"]["terminated"] == {"exitCode": 3, "reason": "Error"}
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    assert not (shared / "broken-app-ran").exists()

    k.out("apply", "-f", k.write("init-never.yaml", [pod(
        "never-init", [sh("app", "exec sleep 600")], restartPolicy="Never",
        initContainers=[sh("fails", "exit 4")])]))
    row = wait_for(lambda: (r := _row(k, "never-init"))[2] == "Init:Error" and r,
                   timeout=60, what="Init:Error")
    assert _get(k, "never-init")["status"]["phase"] == "Failed"


def test_readiness_probe_gates_the_endpoint_slice(lab: Lab, k: Kubectl, shared: Path) -> None:
    flag = shared / "ready-flag"
    probed = pod("probed", [{
        "name": "web", "image": "tulle/echo", "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"exec": {"command": ["test", "-e", str(flag)]},
                           "periodSeconds": 1, "failureThreshold": 1}}])
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probed", "namespace": NS},
           "spec": {"selector": {"app": "probed"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    k.out("apply", "-f", k.write("probed.yaml", [probed, svc]))

    def failing() -> bool:
        events = k.out("get", "events", "-n", NS, "--field-selector",
                       "involvedObject.name=probed,reason=Unhealthy")
        return "Readiness probe failed" in events
    wait_for(failing, timeout=60, what="the readiness probe failing")
    status = _get(k, "probed")["status"]
    assert status["phase"] == "Running" and status["containerStatuses"][0]["ready"] is False
    assert _row(k, "probed")[1] == "0/1"
    assert _ready_endpoints(lab, "probed") == 0
    flag.touch()
    wait_for(lambda: _ready_endpoints(lab, "probed") == 1, timeout=60,
             what="the pod's endpoint ready")
    assert _row(k, "probed")[1] == "1/1"
    flag.unlink()
    wait_for(lambda: _ready_endpoints(lab, "probed") == 0, timeout=60,
             what="the pod's endpoint not ready again")
    assert _get(k, "probed")["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_failing_liveness_probe_restarts_the_container(k: Kubectl, shared: Path) -> None:
    starts = shared / "live-starts"
    k.out("apply", "-f", k.write("live.yaml", [pod("live", [sh(
        "app", f"echo start >> {starts}; exec sleep 600",
        livenessProbe={"exec": {"command": ["test", "-e", str(shared / "never")]},
                       "periodSeconds": 1, "failureThreshold": 2})])]))
    status = wait_for(  # no status until the kubelet's first write
        lambda: (s := _get(k, "live").get("status") or {}).get("containerStatuses", [{}])[0].get(
            "restartCount", 0) >= 1 and s, timeout=60, what="a restart")
    assert status["containerStatuses"][0]["restartCount"] >= 1
    # SIGTERM ended it (through the pod's netns and cgroup wrappers): 128 + 15, as containerd
    assert status["containerStatuses"][0]["lastState"] == {
        "terminated": {"exitCode": 143, "reason": "Error"}}
    wait_for(lambda: len(starts.read_text().split()) >= 2, timeout=30, what="a second start")
    events = k.out("get", "events", "-n", NS, "--field-selector",
                   "involvedObject.name=live,reason=Killing")
    assert "failed liveness probe, will be restarted" in events


def test_env_from_a_secret_and_a_configmap(k: Kubectl, shared: Path) -> None:
    out = shared / "env"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": NS},
              "stringData": {"password": "hunter2"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": NS},
              "data": {"MODE": "fast", "LEVEL": "3"}}
    app = sh("app", f"echo $PW $CFG_MODE $CFG_LEVEL $DSN > {out}; exec sleep 600",
             env=[{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                  {"name": "DSN", "value": "app:$(PW)@db"}],
             envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}])
    k.out("apply", "-f", k.write("env.yaml", [secret, config, pod("envs", [app])]))
    wait_for(lambda: out.exists() and out.read_text().strip(), timeout=60, what="the env written")
    assert out.read_text().split() == ["hunter2", "fast", "3", "app:hunter2@db"]
    stored = json.loads(k.out("get", "secret", "db", "-n", NS, "-o", "json"))
    assert stored["data"] == {"password": "aHVudGVyMg=="} and "stringData" not in stored

    missing = sh("app", f"touch {shared}/missing-ran; exec sleep 600", env=[
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "nope"}}}])
    k.out("apply", "-f", k.write("missing.yaml", [pod("missing-key", [missing])]))
    row = wait_for(lambda: (r := _row(k, "missing-key"))[2] == "CreateContainerConfigError"
                   and r, timeout=60, what="CreateContainerConfigError")
    assert row[1] == "0/1"
    waiting = _get(k, "missing-key")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "CreateContainerConfigError",
                       "message": f"couldn't find key nope in Secret {NS}/db"}
    assert not (shared / "missing-ran").exists()
