"""Probes as the kubelet runs them, on real processes (no root; kubelet_harness): an exec
probe's $(VAR) expanded statically from the container's env; httpGet's httpHeaders sent; a
failed probe's event keeps its error; a liveness kill does not hold up the kubelet's tick
and its exit is reported as containerd does (143 after SIGTERM, 137 after SIGKILL)."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab import probe_runner
from lab.podruntime import exit_code
from tests.unit.lab.kubelet_harness import make_kubelet, make_pod, sh, until

# stop_all: a fixture of tests/unit/lab/conftest.py (kubelet_harness)
LOCAL = ipaddress.IPv4Address("127.0.0.1")


def _container(**fields: Any) -> Any:
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "c", **fields}]}})
    assert isinstance(pod, Pod)
    return pod.spec.containers[0]


def test_an_exec_probes_command_is_expanded_from_the_containers_env_values() -> None:
    # ExpandContainerCommandOnlyStatic: env values as written; valueFrom ones are "".
    probe = {"exec": {"command": ["check", "$(A)", "$$(A)", "$(B)", "$(NOPE)", "x$(A)y"]}}
    c = _container(env=[{"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                   livenessProbe=probe)
    argv = probe_runner.probe_argv(c.liveness_probe, c, LOCAL, sys.executable)
    assert argv == ["check", "1", "$(A)", "", "$(NOPE)", "x1y"]


def test_a_long_outputs_start_and_end_are_kept_within_the_limit() -> None:
    with tempfile.TemporaryFile() as out:
        out.write(b"starting checks\n" + b"." * 5000 + b"\nERROR: database unreachable\n")
        text = probe_runner.said(out)
    assert text.startswith("starting checks") and text.endswith("ERROR: database unreachable")
    assert "[...]" in text and len(text.encode()) <= probe_runner.OUTPUT_LIMIT
    with tempfile.TemporaryFile() as out:
        out.write(b"short\n")
        assert probe_runner.said(out) == "short"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_http_or_tcp_probe_says_so_in_one_line() -> None:
    port = _closed_port()
    for handler, want in (("httpGet", f'Get "http://127.0.0.1:{port}/": '),
                          ("tcpSocket", f"dial tcp 127.0.0.1:{port}: ")):
        c = _container(readinessProbe={handler: {"port": port}})
        argv = probe_runner.probe_argv(c.readiness_probe, c, LOCAL, sys.executable)
        assert isinstance(argv, list)
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert run.returncode != 0
        assert run.stderr.strip() == want + "Connection refused", run.stderr


_RECORDER = """
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps(self.headers.items()) + "\\n")
        self.send_response(200 if self.headers.get_all("X-Probe") == ["a, b"] else 500)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_http_headers_are_sent(tmp_path: Path, stop_all: Any) -> None:
    seen = tmp_path / "headers"
    port = _closed_port()
    web = {"name": "web", "ports": [{"containerPort": port}],
           "command": [sys.executable, "-c", _RECORDER, str(port), str(seen)],
           "readinessProbe": {"periodSeconds": 1, "httpGet": {"port": port, "httpHeaders": [
               {"name": "X-Probe", "value": "a"}, {"name": "X-Probe", "value": "b"},
               {"name": "Host", "value": "probe.example"}]}}}
    kubelet, rt, sink = make_kubelet(tmp_path, make_pod({"containers": [web]}))
    stop_all(kubelet)
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["ready"])
    headers = dict(json.loads(seen.read_text().splitlines()[-1]))
    assert headers["Host"] == "probe.example" and headers["X-Probe"] == "a, b"
    assert headers["User-Agent"] == probe_runner.USER_AGENT and headers["Accept"] == "*/*"


def test_an_exec_probe_reads_its_env_in_a_running_kubelet(tmp_path: Path, stop_all: Any) -> None:
    flag = tmp_path / "ready"
    flag.touch()
    pod = make_pod({"containers": [{**sh("app", "sleep 30"), "env": [
        {"name": "FLAG", "value": str(flag)}], "readinessProbe": {
        "exec": {"command": ["test", "-e", "$(FLAG)"]}, "periodSeconds": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["ready"])


def test_a_liveness_kill_after_sigterm_reports_143(tmp_path: Path, stop_all: Any) -> None:
    pod = make_pod({"restartPolicy": "Never", "containers": [{**sh("app", "sleep 30"),
                    "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                                      "failureThreshold": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    status = until(kubelet, rt, lambda s: s["phase"] == "Failed")
    assert status["containerStatuses"][0]["state"] == {
        "terminated": {"exitCode": 143, "reason": "Error"}}
    assert rt.containers[0].restarts == 0  # Never: killed, not restarted


def test_a_liveness_kill_does_not_hold_the_tick_and_sigkill_reports_137(
    tmp_path: Path, stop_all: Any
) -> None:
    # The container ignores SIGTERM: a tick that waited for it to die would have had to
    # SIGKILL it before returning.
    pod = make_pod({"containers": [{**sh("app", "trap '' TERM; while :; do sleep 1; done"),
                    "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                                      "failureThreshold": 1}}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    stop_all(kubelet)
    c = rt.containers[0]
    until(kubelet, rt, lambda s: any(reason == "Killing" for reason, _ in sink.events))
    assert c.running and c.terminating  # the tick that killed it returned at once
    assert not until(kubelet, rt, lambda s: c.terminating)["containerStatuses"][0]["ready"]
    status = until(kubelet, rt, lambda s: s["containerStatuses"][0]["restartCount"] >= 1)
    assert status["containerStatuses"][0]["lastState"] == {
        "terminated": {"exitCode": 137, "reason": "Error"}}
    assert [r for r, _ in sink.events].count("Killing") == 1


def test_exit_codes_are_the_runtimes() -> None:
    assert [exit_code(c) for c in (0, 3, -15, -9, 255)] == [0, 3, 143, 137, 255]
