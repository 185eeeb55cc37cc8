"""The L4 datapath in a live lab: ClusterIP load balancing, UDP, scale-down, policy,
anti-spoofing, agent restarts, and no iptables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
import yaml

from lab import components, procs
from lab.state import LabPaths

from . import clients
from .conftest import Lab

pytestmark = pytest.mark.netns
PY = "/usr/bin/python3"


def deployment(ns: str, name: str, replicas: int, *, command: list[str] | None = None,
               ports: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None,
               node: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "tulle/echo",
                                 "ports": ports or [{"name": "http", "containerPort": 8080}]}
    if command:
        container["command"] = command
    spec: dict[str, Any] = {"containers": [container]}
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, **(labels or {})}}, "spec": spec}}}


def service(ns: str, name: str, port: int = 80, target: int | str = "http", protocol: str = "TCP",
            affinity: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"app": name},
                            "ports": [{"name": "p", "port": port, "targetPort": target, "protocol": protocol}]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def apply(lab: Lab, *objs: dict[str, Any]) -> None:
    lab.apply(yaml.safe_dump_all(objs))


def pods_of(lab: Lab, ns: str, app: str) -> list[dict[str, Any]]:
    return [p for p in lab.get("pods", ns) if p["metadata"]["labels"].get("app") == app]


def run_py(lab: Lab, ns: str, pod: str, script: str, *args: str, timeout: float = 120) -> Any:
    out = lab.exec(ns, pod, PY, "-c", script, *map(str, args), timeout=timeout).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_for(check: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last})")


def ready_slices(lab: Lab, ns: str, svc: str, count: int) -> bool:
    slices = [s for s in lab.get("endpointslices", ns)
              if s["metadata"]["labels"]["kubernetes.io/service-name"] == svc]
    ready = [ep for s in slices for ep in s.get("endpoints", []) if ep["conditions"]["ready"]]
    return len(ready) == count


@pytest.fixture(scope="module")
def lb(lab: Lab) -> dict[str, Any]:
    """3 echo backends spread over both nodes, and a client pod on each node."""
    apply(lab, namespace("lb"), deployment("lb", "echo", 3), service("lb", "echo"),
          deployment("lb", "client1", 1, node="node1"), deployment("lb", "client2", 1, node="node2"))
    lab.wait_pods_ready("lb", 5, timeout=90)
    wait_for(lambda: ready_slices(lab, "lb", "echo", 3), what="3 ready endpoints")
    return {
        "clients": [pods_of(lab, "lb", "client1")[0]["metadata"]["name"],
                    pods_of(lab, "lb", "client2")[0]["metadata"]["name"]],
        "backends": {p["metadata"]["name"] for p in pods_of(lab, "lb", "echo")},
    }


def test_cluster_ip_by_name_reaches_every_backend_fairly_from_both_nodes(lab: Lab, lb: dict[str, Any]) -> None:
    for client in lb["clients"]:
        result = run_py(lab, "lb", client, clients.HTTP_SPREAD, "echo.lb", 80, 600)
        assert result["failed"] == 0, result
        assert set(result["pods"]) == lb["backends"]
        fair = 600 / len(lb["backends"])
        for pod, count in result["pods"].items():
            assert abs(count - fair) <= 0.2 * fair, (pod, result["pods"])


def test_session_affinity_client_ip_pins_one_backend(lab: Lab, lb: dict[str, Any]) -> None:
    apply(lab, service("lb", "sticky", affinity=True) | {"spec": {
        "selector": {"app": "echo"}, "sessionAffinity": "ClientIP",
        "ports": [{"name": "p", "port": 80, "targetPort": "http"}]}})
    wait_for(lambda: ready_slices(lab, "lb", "sticky", 3), what="sticky endpoints")
    time.sleep(0.5)
    result = run_py(lab, "lb", lb["clients"][0], clients.HTTP_SPREAD, "sticky.lb", 80, 30)
    assert result["failed"] == 0 and len(result["pods"]) == 1, result


def test_service_without_endpoints_fails_fast(lab: Lab, lb: dict[str, Any]) -> None:
    apply(lab, service("lb", "empty") | {"spec": {"selector": {"app": "nothing"},
                                                 "ports": [{"port": 80, "targetPort": 8080}]}})
    time.sleep(0.5)
    started = time.monotonic()
    proc = lab.exec("lb", lb["clients"][0], "curl", "-s", "--max-time", "5", "http://empty.lb/", check=False)
    assert proc.returncode != 0
    assert time.monotonic() - started < 3, "a client must not hang on a service with no endpoints"


def test_udp_service(lab: Lab, lb: dict[str, Any]) -> None:
    apply(lab, deployment("lb", "udp", 2, command=[PY, "-c", clients.UDP_SERVER],
                          ports=[{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
          service("lb", "udp", port=53, target="dns", protocol="UDP"))
    wait_for(lambda: ready_slices(lab, "lb", "udp", 2), what="udp endpoints")
    result = run_py(lab, "lb", lb["clients"][1], clients.UDP_ASK, "udp.lb", 53, 40)
    assert result["failed"] == 0, result
    assert set(result["pods"]) == {p["metadata"]["name"] for p in pods_of(lab, "lb", "udp")}


def test_scale_down_keeps_surviving_streams_and_stops_new_connections(lab: Lab) -> None:
    apply(lab, namespace("scale"),
          deployment("scale", "stream", 3, command=[PY, "-c", clients.STREAM_SERVER],
                     ports=[{"name": "s", "containerPort": 9000}]),
          service("scale", "stream", port=9000, target="s"),
          deployment("scale", "client", 1))
    lab.wait_pods_ready("scale", 4, timeout=90)
    wait_for(lambda: ready_slices(lab, "scale", "stream", 3), what="stream endpoints")
    client = pods_of(lab, "scale", "client")[0]["metadata"]["name"]
    proc = subprocess.Popen(
        [*_tulle(lab), "lab", "exec", "-n", "scale", client, "--", PY, "-c", clients.STREAM_CLIENT,
         "stream.scale", "9000", "12", "3"],
        env=lab.env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())["ready"]
    assert len(ready) == 3, ready
    apply(lab, deployment("scale", "stream", 1, command=[PY, "-c", clients.STREAM_SERVER],
                          ports=[{"name": "s", "containerPort": 9000}]))
    wait_for(lambda: ready_slices(lab, "scale", "stream", 1), what="scale-down to 1")
    (survivor,) = [p["metadata"]["name"] for p in pods_of(lab, "scale", "stream")]
    time.sleep(0.5)
    spread = run_py(lab, "scale", client, _FIRST_LINE_SPREAD, "stream.scale", 9000, 20)
    assert spread == {survivor: 20}, "new connections must only reach the surviving pod"
    out, _ = proc.communicate(timeout=60)
    streams = json.loads(out.strip().splitlines()[-1])
    assert streams[survivor]["error"] is None and streams[survivor]["bytes"] > 100_000, streams


_FIRST_LINE_SPREAD = r"""
import collections, json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pods = collections.Counter()
for _ in range(n):
    s = socket.create_connection((host, port), timeout=5)
    pods[s.makefile("rb").readline().strip().decode()] += 1
    s.close()
print(json.dumps(pods))
"""


def _tulle(lab: Lab) -> list[str]:
    import sys

    return [sys.executable, "-m", "agent.cli.main"]


def test_spoofed_source_is_dropped_and_recorded(lab: Lab, lb: dict[str, Any]) -> None:
    client = lb["clients"][0]
    target = pods_of(lab, "lb", "echo")[0]["status"]["podIP"]
    lab.exec("lb", client, "ip", "addr", "add", "10.244.1.250/32", "dev", "eth0")
    try:
        spoofed = lab.exec("lb", client, "curl", "-s", "--max-time", "2", "--interface", "10.244.1.250",
                           f"http://{target}:8080/", check=False)
        assert spoofed.returncode != 0
        honest = lab.exec("lb", client, "curl", "-s", "--max-time", "3", f"http://{target}:8080/")
        assert json.loads(honest.stdout)["namespace"] == "lb"
    finally:
        lab.exec("lb", client, "ip", "addr", "del", "10.244.1.250/32", "dev", "eth0", check=False)
    flows = lab.tulle("observe", "--last", "200", "--verdict", "DROPPED", "-o", "json").stdout
    reasons = [json.loads(line)["flow"].get("drop_reason_desc") for line in flows.splitlines() if line]
    assert "INVALID_SOURCE_IP" in reasons


def test_agent_sigkill_resets_nothing(lab: Lab, lb: dict[str, Any]) -> None:
    """A 10s stream of new requests and long-lived streams while node1's agent is SIGKILLed;
    the controller restarts it, the new agent adopts the pinned maps and programs."""
    client = lb["clients"][0]
    apply(lab, deployment("lb", "stream", 2, command=[PY, "-c", clients.STREAM_SERVER],
                          ports=[{"name": "s", "containerPort": 9000}]),
          service("lb", "stream", port=9000, target="s"))
    wait_for(lambda: ready_slices(lab, "lb", "stream", 2), what="stream endpoints")
    streams = subprocess.Popen(
        [*_tulle(lab), "lab", "exec", "-n", "lb", client, "--", PY, "-c", clients.STREAM_CLIENT,
         "stream.lb", "9000", "12", "2"], env=lab.env, stdout=subprocess.PIPE, text=True)
    assert streams.stdout is not None
    assert len(json.loads(streams.stdout.readline())["ready"]) == 2
    requests: dict[str, Any] = {}
    req_thread = threading.Thread(target=lambda: requests.update(
        run_py(lab, "lb", client, clients.HTTP_STREAM, "echo.lb", 80, 10)))
    req_thread.start()
    time.sleep(2)
    paths = LabPaths.for_lab(lab.name)
    agent = components.component_record(paths, "agent", "node1")
    assert agent is not None
    agent_log = components.component_log(paths, "agent", "node1")
    logged_before = agent_log.stat().st_size
    os.kill(agent.pid, signal.SIGKILL)
    wait_for(lambda: (r := components.component_record(paths, "agent", "node1")) is not None
             and r.pid != agent.pid and procs.is_alive(r), what="agent restarted")
    req_thread.join(timeout=60)
    out, _ = streams.communicate(timeout=60)
    result = json.loads(out.strip().splitlines()[-1])
    assert all(s["error"] is None and s["bytes"] > 100_000 for s in result.values()), result
    assert requests["failed"] == 0 and requests["ok"] > 50, requests
    # The new agent adopted state and is healthy again.
    health = components.agent_health(paths, "node1")
    wait_for(lambda: json.loads(health.read_text()).get("pid") != agent.pid
             and json.loads(health.read_text())["ready"], what="new agent healthy")
    # Same programs, same kernel: it adopted the pinned programs instead of compiling
    # (agent.datapath.templates); the first start had compiled and recorded them.
    log = agent_log.read_bytes()
    assert b"datapath: compiling, not adopting the pinned programs: no compile record" in log
    since = log[logged_before:].decode(errors="replace")
    assert "datapath: adopted the programs pinned in" in since, since[-3000:]
    assert "datapath: compiling" not in since, since[-3000:]


def test_an_agent_that_compiles_again_attaches_its_programs_to_every_running_pod(
        lab: Lab, lb: dict[str, Any]) -> None:
    """A restart without its compile record compiles: the maps are written while the verifier
    runs (programs.load_datapath ``maps_ready``), and the new programs go onto the veths of the
    pods already running once loaded; their traffic keeps flowing through them."""
    from agent.datapath import templates

    paths = LabPaths.for_lab(lab.name)
    record = components.node_state(paths, "node1") / templates.RECORD_NAME
    assert record.is_file()
    agent = components.component_record(paths, "agent", "node1")
    assert agent is not None
    agent_log = components.component_log(paths, "agent", "node1")
    logged_before = agent_log.stat().st_size
    record.unlink()
    os.kill(agent.pid, signal.SIGKILL)
    health = components.agent_health(paths, "node1")

    def restarted_and_ready() -> bool:
        try:
            report = json.loads(health.read_text())
        except (OSError, ValueError):
            return False  # between the old agent's file and the new one's
        return report.get("pid") != agent.pid and report["ready"] and bool(
            (report.get("datapath") or {}).get("first_sync_s"))

    wait_for(restarted_and_ready, what="the recompiled agent synced", timeout=120)
    since = agent_log.read_bytes()[logged_before:].decode(errors="replace")
    assert "datapath: compiling, not adopting the pinned programs: no compile record" in since
    node1_pods = [p for p in lab.get("pods", "lb")
                  if p["spec"].get("nodeName") == "node1" and p["status"].get("podIP")]
    assert node1_pods
    attached = {line.rsplit("(", 1)[-1].rstrip(")") for line in since.splitlines()
                if "datapath attached to ifindex" in line}
    assert {p["status"]["podIP"] for p in node1_pods} <= attached, (attached, since[-3000:])
    result = run_py(lab, "lb", lb["clients"][0], clients.HTTP_SPREAD, "echo.lb", 80, 60)
    assert result["failed"] == 0 and set(result["pods"]) == lb["backends"], result


def test_no_iptables_rules_in_any_node(lab: Lab, lb: dict[str, Any]) -> None:
    for node in ("node1", "node2"):
        out = subprocess.run(["ip", "netns", "exec", f"tulle-{lab.name}-{node}", "iptables-save"],
                             capture_output=True, text=True, check=True).stdout
        rules = [line for line in out.splitlines() if line.startswith("-A")]
        assert rules == [], rules
