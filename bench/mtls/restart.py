"""A waypoint restart under tunnelled traffic (issue 11): SIGKILL node1's waypoint while an
enrolled client pod on node1 has a request in flight to an enrolled (STRICT) echo pod on
node2, through node1's 15007 and node2's 15008.

Per round, from the client pod:

- ``inflight``: the connection whose request was in flight at the kill (it must fail: the
  waypoint that carried it is gone) and a retry on a new connection (it must succeed);
- ``new``: a connection opened right after the kill (it must succeed: the lab holds the
  waypoint's listening sockets, lab/listeners.py, so it waits in the accept queue);
- ``kill_to_first_success_s``: kill -> the response on that new connection.

    sudo .venv/bin/python -m bench.mtls.restart [--rounds 5]

prints each round and the median and max of ``kill_to_first_success_s``. The netns test
(tests/netns/test_waypoint_restart.py) runs the same round and asserts only the behaviour.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.waypoint_failover import CliLab, LabLike, role_record, waypoint_record
from lab import components, procs
from lab.restart import RestartPolicy
from lab.state import LabPaths

NS = "restart"
PY = "/usr/bin/python3"
PORT = 8080
CLIENT_TIMEOUT_S = 30.0  # generous for a loaded CI machine; the bench reports real times

# Runs in the client pod. A keep-alive connection answers one request, then carries a
# request the echo pod delays for 20 s ("in flight"); "ready" is printed; after a line on
# stdin (the waypoint was killed) a new connection is opened at once, then the in-flight
# connection is read (its response must never come) and its request retried anew.
CLIENT = r"""
import json, socket, sys, time
ip, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def send(s, path):
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: echo\r\n\r\n".encode())
def status(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response ({len(data)} bytes)")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n")
                   if l.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return int(head.split()[1])
def fresh(path, t0):
    try:
        with socket.create_connection((ip, port), timeout=timeout) as s:
            send(s, path)
            code = status(s)
            return {"ok": code == 200, "status": code, "seconds": time.monotonic() - t0}
    except OSError as e:
        return {"ok": False, "error": repr(e), "seconds": time.monotonic() - t0}
inflight = socket.create_connection((ip, port), timeout=timeout)
send(inflight, "/before")
before = status(inflight)
send(inflight, "/inflight?delay=20s")
print(json.dumps({"ready": before}), flush=True)
sys.stdin.readline()
t0 = time.monotonic()
new = fresh("/new", t0)
try:
    code = status(inflight)
    result = {"ok": code == 200, "status": code}
except OSError as e:
    result = {"ok": False, "error": repr(e)}
result["retry"] = fresh("/inflight-retry", time.monotonic())
print(json.dumps({"new": new, "inflight": result}))
"""


def manifests() -> list[dict[str, Any]]:
    def deployment(name: str, node: str) -> dict[str, Any]:
        spec = {"containers": [{"name": name, "image": "tulle/echo",
                                "ports": [{"name": "http", "containerPort": PORT}]}],
                "nodeSelector": {"kubernetes.io/hostname": node}}
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}

    strict = {"apiVersion": "security.tulle.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": NS},
              "spec": {"mtls": {"mode": "STRICT"}}}  # only the tunnel reaches the echo pod
    return [{"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": NS, "labels": {"tulle.io/mtls": "true"}}},
            deployment("echo", "node2"), deployment("client", "node1"), strict]


@dataclass(frozen=True)
class Setup:
    client: str
    echo_ip: str


def _wait(check: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not met within {timeout}s (last: {last})")


def setup(lab: LabLike) -> Setup:
    lab.apply("\n---\n".join(json.dumps(m) for m in manifests()))

    def ready() -> dict[str, dict[str, Any]] | None:
        pods = {p["metadata"]["labels"]["app"]: p for p in lab.get("pods", NS)}
        ok = [p for p in pods.values() if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions", []))]
        return pods if len(ok) == 2 == len(pods) else None

    pods = _wait(ready, "the echo and client pods ready")
    s = Setup(pods["client"]["metadata"]["name"], pods["echo"]["status"]["podIP"])

    def tunnelled() -> bool:  # STRICT: a 200 came through both waypoints (SVIDs issued)
        r = lab.exec(NS, s.client, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                     "--max-time", "3", f"http://{s.echo_ip}:{PORT}/", check=False)
        return r.stdout.strip() == "200"

    _wait(tunnelled, "a request through the mTLS tunnel")
    return s


@dataclass(frozen=True)
class Round:
    killed_pid: int
    restarted_pid: int
    new_ok: bool
    kill_to_first_success_s: float
    new_detail: dict[str, Any]
    inflight_ok: bool  # the in-flight request got its response (it must not)
    inflight_detail: dict[str, Any]
    retry_ok: bool


def run_round(lab: LabLike, s: Setup, node: str = "node1") -> Round:
    # Up past the restart policy's stable_after, so this kill counts as a first exit
    # (restarted at once), not as a crash loop (back-off) after an earlier round's kill.
    # Both of the pair: the standby has synced long before (it takes ~1 s).
    stable = RestartPolicy().stable_after + 0.5
    roles = (components.role("waypoint", node), components.role("waypoint-standby", node))
    _wait(lambda: all(procs.uptime(role_record(lab.name, r)) >= stable for r in roles),
          f"both waypoints of {node} up for {stable}s", 60)
    old = waypoint_record(lab.name, node)
    assert procs.is_alive(old), f"waypoint-{node} (pid {old.pid}) is not running"
    argv = ["lab", "exec", "-n", NS, s.client, "--", PY, "-c", CLIENT, s.echo_ip, str(PORT),
            str(CLIENT_TIMEOUT_S)]
    client = subprocess.Popen([sys.executable, "-m", "agent.cli.main", *argv],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, TULLE_LAB=lab.name))
    try:
        assert client.stdout and client.stdin and client.stderr
        ready = client.stdout.readline()
        assert json.loads(ready or "{}").get("ready") == 200, (ready, client.stderr.read())
        assert procs.is_alive(old)  # still the lab's waypoint (start time checked)
        os.kill(old.pid, signal.SIGKILL)
        client.stdin.write("killed\n")
        client.stdin.flush()
        out, err = client.communicate(timeout=3 * CLIENT_TIMEOUT_S)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    new = _wait(lambda: (r := role_record(lab.name, old.role)).pid != old.pid and r,
                "the waypoint restarted", 30)
    return Round(
        killed_pid=old.pid,
        restarted_pid=new.pid,
        new_ok=bool(result["new"]["ok"]),
        kill_to_first_success_s=round(result["new"]["seconds"], 3),
        new_detail=result["new"],
        inflight_ok=bool(result["inflight"]["ok"]),
        inflight_detail={k: v for k, v in result["inflight"].items() if k != "retry"},
        retry_ok=bool(result["inflight"]["retry"]["ok"]),
    )


def main(argv: list[str] | None = None) -> int:
    from lab import lifecycle

    parser = argparse.ArgumentParser(description="kill a node's waypoint under mTLS tunnels")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lab", default="benchrst")
    parser.add_argument("--copy-logs", type=Path, default=None,
                        help="copy the lab's process logs here before it is removed")
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
        times = [r.kill_to_first_success_s for r in rounds if r.new_ok]
        print(json.dumps({
            "rounds": len(rounds),
            "new_connection_failures": sum(not r.new_ok for r in rounds),
            "inflight_survived": sum(r.inflight_ok for r in rounds),
            "retry_failures": sum(not r.retry_ok for r in rounds),
            "kill_to_first_success_s": {
                "median": statistics.median(times) if times else None,
                "max": max(times, default=None),
                "all": times,
            },
        }))
        return 0
    finally:
        if args.copy_logs is not None:
            shutil.copytree(LabPaths.for_lab(args.lab).logs, args.copy_logs, dirs_exist_ok=True)
        lifecycle.down(args.lab, lambda m: None)


if __name__ == "__main__":
    raise SystemExit(main())
