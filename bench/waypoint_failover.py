"""Waypoint failure is bounded (issue 9, item 10): SIGKILL a node's waypoint during traffic.

A client pod on node1 calls two Services that select the same echo pods on node2: ``l4``
(no route: the kernel balances it) and ``l7`` (a GAMMA HTTPRoute: node1's waypoint serves
it), one new connection per request. Mid-run the waypoint of node1 is killed by the PID in
the lab's process record; the lab controller restarts it. Reported per round:

- ``l4_failures``: must be 0 (L4 never touches the waypoint);
- ``outage_s``: kill -> first L7 success afterwards;
- ``restart_s``: kill -> the new waypoint process started (the controller's reaction);
- ``recovery_s``: the new process started -> first L7 success (its start-up; goal < 1 s).
  Since the warm standby (l7proxy/RESTART.md) the node's other waypoint serves first, so
  ``restart_s`` is the killed one's replacement (the next standby) and ``recovery_s`` can be
  negative; start times come from /proc ticks over a whole-second boot time (±1 s);
- ``waypoint_rss_mb``: the killed waypoint's resident memory.

    sudo .venv/bin/python -m bench.waypoint_failover [--rounds 3]

The netns test (tests/netns/test_waypoint_failover.py) runs one round of the same scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from l7proxy.standby import holder
from lab import components, procs
from lab.state import LabPaths

NS = "failover"
PY = "/usr/bin/python3"

# Alternates L4 and L7 requests (a new connection each) until the deadline; prints
# [[wall time, "l4"|"l7", ok], ...]. A request that fails waits 20 ms before the next.
CLIENT = r"""
import json, socket, sys, time
targets = {"l4": sys.argv[1], "l7": sys.argv[2]}
deadline = time.time() + float(sys.argv[3])
out = []
def get(ip):
    with socket.create_connection((ip, 80), timeout=2) as s:
        s.sendall(b"GET /failover HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"HTTP/1.1 200")
while time.time() < deadline:
    for name, ip in targets.items():
        started = time.time()
        try:
            ok = get(ip)
        except OSError:
            ok = False
        out.append([started, name, ok])
        time.sleep(0.005 if ok else 0.02)
print(json.dumps(out))
"""


class LabLike(Protocol):
    name: str

    def apply(self, manifest: str) -> str: ...

    def get(self, kind: str, namespace: str = "default") -> list[dict[str, Any]]: ...

    def exec(self, namespace: str, pod: str, *cmd: str, check: bool = True,
             timeout: float = 30) -> subprocess.CompletedProcess[str]: ...


def manifests() -> list[dict[str, Any]]:
    pod_spec = {"containers": [{"name": "web", "image": "tulle/echo",
                                "ports": [{"name": "http", "containerPort": 8080}]}],
                "nodeSelector": {"kubernetes.io/hostname": "node2"}}
    client_spec = {**pod_spec, "nodeSelector": {"kubernetes.io/hostname": "node1"}}

    def deployment(name: str, replicas: int, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}

    def service(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
                "spec": {"selector": {"app": "web"},
                         "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}

    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "l7", "namespace": NS},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "l7", "port": 80}],
                      "rules": [{"backendRefs": [{"name": "l7", "port": 80}]}]}}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            deployment("web", 2, pod_spec), deployment("client", 1, client_spec),
            service("l4"), service("l7"), route]


@dataclass(frozen=True)
class Setup:
    client: str
    l4_ip: str
    l7_ip: str


def _wait(check: Any, what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what} not met within {timeout}s")


def setup(lab: LabLike) -> Setup:
    lab.apply("\n---\n".join(json.dumps(m) for m in manifests()))

    def ready_pods() -> list[dict[str, Any]] | None:
        pods = lab.get("pods", NS)
        ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                        for c in (p.get("status") or {}).get("conditions", []))]
        return ready if len(ready) == 3 == len(pods) else None

    pods = _wait(ready_pods, "3 ready pods")
    client = next(p["metadata"]["name"] for p in pods if p["metadata"]["name"].startswith("client"))
    ips = {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in lab.get("services", NS)}

    def served_by_the_waypoint() -> bool:
        r = lab.exec(NS, client, "curl", "-s", "--max-time", "2", f"http://{ips['l7']}/",
                     check=False)
        return r.returncode == 0 and "X-Forwarded-For" in r.stdout

    _wait(served_by_the_waypoint, "the l7 Service served through the waypoint", 60)
    return Setup(client, ips["l4"], ips["l7"])


def _started_at(rec: procs.ProcRecord) -> float:
    """Wall-clock start of a recorded process (its start time is in ticks since boot)."""
    boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    return boot + rec.start_time / os.sysconf("SC_CLK_TCK")


def waypoint_record(lab_name: str, node: str = "node1") -> procs.ProcRecord:
    """The node's active waypoint: of its pair (active and standby, l7proxy/standby.py), the
    one whose PID the lock file names; the first one started until either took the lock."""
    paths = LabPaths.for_lab(lab_name)
    pair = [r for r in procs.load_records(paths.procs)
            if r.role in (components.role("waypoint", node),
                          components.role("waypoint-standby", node))]
    active = holder(components.node_state(paths, node) / "waypoint.lock")
    return next((r for r in pair if r.pid == active),
                next(r for r in pair if r.role == components.role("waypoint", node)))


def role_record(lab_name: str, role: str) -> procs.ProcRecord:
    (rec,) = [r for r in procs.load_records(LabPaths.for_lab(lab_name).procs) if r.role == role]
    return rec


@dataclass(frozen=True)
class Round:
    l4_requests: int
    l4_failures: int
    l7_requests: int
    l7_failures: int
    l7_ok_after_restart: int
    outage_s: float
    restart_s: float
    recovery_s: float
    waypoint_rss_mb: float  # the killed waypoint's resident memory


def run_round(lab: LabLike, s: Setup, *, duration: float = 10.0, kill_after: float = 2.0) -> Round:
    """One round: traffic for ``duration`` s, node1's waypoint SIGKILLed at ``kill_after``."""
    old = waypoint_record(lab.name)
    assert procs.is_alive(old), f"waypoint-node1 (pid {old.pid}) is not running"
    argv = ["lab", "exec", "-n", NS, s.client, "--", PY, "-c", CLIENT, s.l4_ip, s.l7_ip,
            str(duration)]
    client = subprocess.Popen([sys.executable, "-m", "agent.cli.main", *argv],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, TULLE_LAB=lab.name))
    time.sleep(kill_after)
    rss_mb = _rss_mb(old.pid)
    killed_at = time.time()
    os.kill(old.pid, signal.SIGKILL)  # the lab's own waypoint, checked alive by start time
    new = _wait(lambda: (r := role_record(lab.name, old.role)).pid != old.pid and r, "a restart",
                30)
    out, err = client.communicate(timeout=duration + 60)
    assert client.returncode == 0, err
    samples = json.loads(out.strip().splitlines()[-1])
    restarted_at = _started_at(new)
    l4 = [ok for _, name, ok in samples if name == "l4"]
    l7 = [(t, ok) for t, name, ok in samples if name == "l7"]
    after_kill = [(t, ok) for t, ok in l7 if t >= killed_at]
    last_failure = max((t for t, ok in after_kill if not ok), default=killed_at)
    first_ok = min((t for t, ok in after_kill if ok and t >= last_failure), default=float("nan"))
    return Round(
        l4_requests=len(l4), l4_failures=l4.count(False),
        l7_requests=len(l7), l7_failures=sum(1 for _, ok in l7 if not ok),
        l7_ok_after_restart=sum(1 for t, ok in l7 if ok and t >= restarted_at),
        outage_s=round(first_ok - killed_at, 3),
        restart_s=round(restarted_at - killed_at, 3),
        recovery_s=round(first_ok - restarted_at, 3),
        waypoint_rss_mb=rss_mb,
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


class CliLab:
    """The lab through the `tulle` CLI (what the netns tests' Lab fixture does)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _tulle(self, *args: str, input: str | None = None, check: bool = True,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent.cli.main", "--lab", self.name, *args],
                              input=input, capture_output=True, text=True, timeout=timeout,
                              check=check)

    def apply(self, manifest: str) -> str:
        return self._tulle("apply", "-f", "-", input=manifest).stdout

    def get(self, kind: str, namespace: str = "default") -> list[dict[str, Any]]:
        out = self._tulle("get", kind, "-n", namespace, "-o", "json").stdout
        return list(json.loads(out)["items"])

    def exec(self, namespace: str, pod: str, *cmd: str, check: bool = True,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self._tulle("lab", "exec", "-n", namespace, pod, "--", *cmd, check=check,
                           timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    from lab import lifecycle

    parser = argparse.ArgumentParser(description="kill a node's waypoint during traffic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lab", default="benchfail")
    args = parser.parse_args(argv)
    print(f"• bringing up lab {args.lab}", file=sys.stderr)
    lifecycle.up(args.lab, 2, lambda m: None)
    try:
        lab = CliLab(args.lab)
        s = setup(lab)
        rounds = []
        for i in range(args.rounds):
            r = run_round(lab, s)
            print(f"• round {i + 1}: {json.dumps(asdict(r))}", file=sys.stderr)
            rounds.append(r)
            time.sleep(1.0)
        result = {
            "rounds": [asdict(r) for r in rounds],
            "l4_failures_total": sum(r.l4_failures for r in rounds),
            "median_outage_s": statistics.median(r.outage_s for r in rounds),
            "median_restart_s": statistics.median(r.restart_s for r in rounds),
            "median_recovery_s": statistics.median(r.recovery_s for r in rounds),
            "median_waypoint_rss_mb": statistics.median(r.waypoint_rss_mb for r in rounds),
            "recovery_goal_s": 1.0,
        }
        print(json.dumps(result))
        out = Path("bench/results") / f"waypoint-failover-{time.strftime('%Y-%m-%d')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        lifecycle.down(args.lab, lambda m: None)


if __name__ == "__main__":
    raise SystemExit(main())
