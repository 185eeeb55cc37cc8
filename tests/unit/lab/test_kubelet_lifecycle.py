"""The kubelet's init containers, probes and env from Secrets/ConfigMaps, with real
processes on this machine (the pod's netns wrapper replaced by nothing, so no root):
init containers one after another before the app; a failing one retried or, under
restartPolicy Never, failing the pod; a readiness probe driving ``ready``; a liveness
failure restarting the container; a missing Secret key keeping it from starting."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

from lab import initcontainers
from lab.probes import Kind
from tests.unit.lab.kubelet_harness import cond, make_kubelet, make_pod, sh, until

# stop_all: a fixture of tests/unit/lab/conftest.py (kubelet_harness)


def test_init_containers_run_in_order_before_the_app(tmp_path: Path, stop_all: Any) -> None:
    out = tmp_path / "trace"
    pod = make_pod({"initContainers": [sh("one", f"sleep 0.3; echo one >> {out}"),
                                   sh("two", f"echo two >> {out}")],
                "containers": [sh("app", f"echo app >> {out}; sleep 30")]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    first = until(kubelet, rt, lambda s: s["initContainerStatuses"][0]["state"].get("running"))
    assert first["phase"] == "Pending"
    assert cond(first, "Initialized") == {
        "type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [one two]"}
    assert first["initContainerStatuses"][1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert first["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    status = until(kubelet, rt, lambda s: s["phase"] == "Running" and "app" in out.read_text())
    assert out.read_text().split() == ["one", "two", "app"]
    assert cond(status, "Initialized") == {"type": "Initialized", "status": "True"}
    assert [s["state"] for s in status["initContainerStatuses"]] == [
        {"terminated": {"exitCode": 0, "reason": "Completed"}}] * 2
    assert all(s["ready"] for s in status["initContainerStatuses"])


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_a_failing_init_container_is_retried_and_the_app_never_starts(
    tmp_path: Path, stop_all: Any, policy: str
) -> None:
    pod = make_pod({"restartPolicy": policy, "initContainers": [sh("ok", "true"),
                                                            sh("bad", "exit 3")],
                "containers": [sh("app", f"touch {tmp_path}/app-ran; sleep 30")]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: s["initContainerStatuses"][1]["restartCount"] >= 2)
    bad = status["initContainerStatuses"][1]
    assert status["phase"] == "Pending" and not (tmp_path / "app-ran").exists()
    assert bad["lastState"] == {"terminated": {"exitCode": 3, "reason": "Error"}}
    waiting = until(kubelet, rt,
                     lambda s: "waiting" in s["initContainerStatuses"][1]["state"])
    assert waiting["initContainerStatuses"][1]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert rt.init_containers[0].restarts == 0  # a succeeded one is not run again


def test_a_failed_init_container_fails_the_pod_under_restart_policy_never(
    tmp_path: Path, stop_all: Any
) -> None:
    pod = make_pod({"restartPolicy": "Never", "initContainers": [sh("bad", "exit 2")],
                "containers": [sh("app", "sleep 30")]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: s["phase"] == "Failed")
    assert status["initContainerStatuses"][0]["state"] == {
        "terminated": {"exitCode": 2, "reason": "Error"}}
    assert status["initContainerStatuses"][0]["restartCount"] == 0
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert initcontainers.plan(rt.init_containers).failed
    for _ in range(3):
        kubelet.tick()
    assert rt.containers[0].proc is None


def test_a_readiness_probe_drives_ready(tmp_path: Path, stop_all: Any) -> None:
    flag = tmp_path / "ready"
    pod = make_pod({"containers": [{**sh("app", "sleep 30"), "readinessProbe": {
        "exec": {"command": ["test", "-e", str(flag)]}, "periodSeconds": 1,
        "failureThreshold": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: ("Unhealthy", "Readiness probe failed: command "
                                            "exited with 1") in sink.events)
    assert status["containerStatuses"][0]["ready"] is False
    assert cond(status, "Ready")["status"] == "False"
    flag.touch()
    status = until(kubelet, rt, lambda s: cond(s, "Ready")["status"] == "True")
    assert status["containerStatuses"][0]["ready"] is True
    flag.unlink()
    until(kubelet, rt, lambda s: not s["containerStatuses"][0]["ready"])
    assert rt.containers[0].restarts == 0  # readiness never restarts


def test_a_failing_liveness_probe_restarts_the_container(tmp_path: Path, stop_all: Any) -> None:
    pod = make_pod({"containers": [{**sh("app", "sleep 30"), "livenessProbe": {
        "exec": {"command": ["sh", "-c", "echo dead; exit 1"]}, "periodSeconds": 1,
        "failureThreshold": 2}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: s["containerStatuses"][0]["restartCount"] >= 1)
    assert ("Unhealthy", "Liveness probe failed: dead") in sink.events
    assert ("Killing", "Container app failed liveness probe, will be restarted") in sink.events
    assert status["containerStatuses"][0]["restartCount"] == 1


def test_a_probe_that_times_out_fails(tmp_path: Path, stop_all: Any) -> None:
    pod = make_pod({"containers": [{**sh("app", "sleep 30"), "readinessProbe": {
        "exec": {"command": ["sleep", "30"]}, "timeoutSeconds": 1, "periodSeconds": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    until(kubelet, rt, lambda s: ("Unhealthy", "Readiness probe failed: command timed out "
                                   "after 1s") in sink.events)


def test_a_grpc_probe_is_reported_as_not_supported(tmp_path: Path, stop_all: Any) -> None:
    pod = make_pod({"containers": [{**sh("app", "sleep 30"), "readinessProbe": {
        "grpc": {"port": 9000}, "periodSeconds": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: ("Unhealthy", "Readiness probe failed: grpc probes "
                                            "are not supported in the lab") in sink.events)
    assert status["containerStatuses"][0]["ready"] is False


def test_a_missing_secret_key_keeps_the_container_from_starting(
    tmp_path: Path, stop_all: Any
) -> None:
    out = tmp_path / "env"
    objects: dict[tuple[str, str, str], Any] = {("Secret", "shop", "db"): {"data": {}}}
    pod = make_pod({"containers": [{**sh("app", f"echo $PW > {out}; sleep 30"), "env": [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod, objects)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: "waiting" in s["containerStatuses"][0]["state"]
                    and s["containerStatuses"][0]["state"]["waiting"].get("message"))
    assert status["containerStatuses"][0]["state"] == {"waiting": {
        "reason": "CreateContainerConfigError",
        "message": "couldn't find key pw in Secret shop/db"}}
    assert ("Failed", "Error: couldn't find key pw in Secret shop/db") in sink.events
    assert rt.containers[0].proc is None
    objects[("Secret", "shop", "db")] = {"data": {"pw": base64.b64encode(b"hunter2").decode()}}
    until(kubelet, rt, lambda s: out.exists() and out.read_text() == "hunter2\n")


def test_tcp_and_http_probes_connect_to_themake_pod(tmp_path: Path, stop_all: Any) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok").write_text("ok")
    web = {"name": "web", "ports": [{"name": "http", "containerPort": 18923}],
           "command": [sys.executable, "-m", "http.server", "18923", "--bind", "127.0.0.1",
                       "--directory", str(tmp_path / "www")],
           "readinessProbe": {"httpGet": {"port": "http", "path": "ok"}, "periodSeconds": 1},
           "livenessProbe": {"tcpSocket": {"port": 18923}, "periodSeconds": 1}}
    kubelet, rt, sink = make_kubelet(tmp_path, make_pod({"containers": [web]}))
    stop_all(kubelet)
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["ready"])
    (tmp_path / "www" / "ok").unlink()  # 404: not ready, and the TCP port still answers
    until(kubelet, rt, lambda s: ("Unhealthy", "Readiness probe failed: HTTP probe failed "
                                   "with statuscode: 404") in sink.events)
    liveness = rt.containers[0].probes[Kind.LIVENESS]
    assert liveness.last is True and liveness.result is True  # the port still answers
    assert rt.containers[0].restarts == 0 and "Killing" not in {r for r, _ in sink.events}


def test_http_and_tcp_probes_ignore_the_containers_proxy_and_python_settings(
    tmp_path: Path, stop_all: Any
) -> None:
    """The kubelet's probes use no proxy: a pod's ``http_proxy`` (here a dead one) or
    ``PYTHONPATH`` must not fail them, and so restart a healthy container."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "ok").write_text("ok")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "socket.py").write_text("raise SystemExit(3)\n")
    dead = "http://127.0.0.1:9"
    web = {"name": "web", "ports": [{"name": "http", "containerPort": 18924}],
           "command": [sys.executable, "-I", "-m", "http.server", "18924", "--bind",
                       "127.0.0.1", "--directory", str(tmp_path / "www")],
           "env": [{"name": "http_proxy", "value": dead}, {"name": "HTTP_PROXY", "value": dead},
                   {"name": "PYTHONPATH", "value": str(tmp_path / "bad")}],
           "readinessProbe": {"httpGet": {"port": "http", "path": "ok"}, "periodSeconds": 1},
           # liveness waits for the server to listen (a startup probe), then must never fail
           "startupProbe": {"tcpSocket": {"port": 18924}, "periodSeconds": 1,
                            "failureThreshold": 60},
           "livenessProbe": {"tcpSocket": {"port": 18924}, "periodSeconds": 1,
                             "failureThreshold": 1}}
    kubelet, rt, sink = make_kubelet(tmp_path, make_pod({"containers": [web]}))
    stop_all(kubelet)
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["ready"])
    until(kubelet, rt, lambda s: rt.containers[0].probes[Kind.LIVENESS].last is not None)
    liveness = rt.containers[0].probes[Kind.LIVENESS]
    assert liveness.last is True and rt.containers[0].restarts == 0, sink.events
    # only the startup probe may have failed, while the server was not yet listening
    assert all(m.startswith("Startup") for r, m in sink.events if r == "Unhealthy")


def test_a_probe_in_flight_dies_with_its_container(tmp_path: Path, stop_all: Any) -> None:
    """A container that exits under restartPolicy Never leaves no probe process behind."""
    pod = make_pod({"restartPolicy": "Never", "containers": [{**sh("app", "sleep 1"),
                "livenessProbe": {"exec": {"command": ["sleep", "100"]},
                                  "timeoutSeconds": 60, "periodSeconds": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    c = rt.containers[0]
    until(kubelet, rt, lambda s: bool(c.probe_runs))
    procs = [run.proc for run in c.probe_runs.values()]
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["state"].get("terminated")
           is not None)
    kubelet.tick()
    assert not c.probe_runs
    assert all(p.poll() is not None for p in procs)  # killed and reaped




def test_env_from_keys_that_are_no_names_are_skipped_with_an_event(
    tmp_path: Path, stop_all: Any
) -> None:
    out = tmp_path / "env"
    objects = {("ConfigMap", "shop", "cfg"): {"data": {"1bad": "x", "GOOD": "yes"}}}
    pod = make_pod({"containers": [{**sh("app", f"echo $GOOD > {out}; sleep 30"),
                                "envFrom": [{"configMapRef": {"name": "cfg"}}]}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod, objects)
    stop_all(kubelet)
    until(kubelet, rt, lambda s: out.exists() and out.read_text() == "yes\n")
    assert ("InvalidEnvironmentVariableNames", "Keys [1bad] from the EnvFrom configmap "
            "shop/cfg were skipped since they are considered invalid environment variable "
            "names.") in sink.events
    assert "1bad" not in rt.containers[0].env
