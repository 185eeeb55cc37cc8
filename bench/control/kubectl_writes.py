"""API write throughput (issue 10): Service creations through the lab API server, one client
loop on a kept-alive HTTPS connection, up to N Services, reported as writes/s per block of
1,000 (so the cost of a write at 10,000 Services shows apart from the cost at 0).

By default against a bare API server (``python -m lab.apiserver`` on a temp store, its own
process); with ``--kubeconfig`` against any server, e.g. a lab's
(``tulle lab kubeconfig``), where every node process reacts to each Service.

With ``--watchers N`` the bare server also streams N watches while it takes the writes, spread
over a lab's watched kinds as a 2-node lab's agents, waypoints, DNS and controller hold them
(1 in 8 on Services, the written kind); with ``--pause MS`` each write waits that long after
the last (a lone write, not a burst) and the round trip of each write is reported: what a
woken watch costs the client whose write woke it. The server's CPU per write comes from its
/proc/PID/stat.

    python -m bench.control.kubectl_writes [--services 10000] [--block 1000]
        [--kubeconfig PATH] [--namespace bench-writes] [--watchers 56] [--pause 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.control.apiserver import served


@contextmanager
def bare_server() -> Iterator[Path]:
    """A lab API server process over a temp store; yields its kubeconfig."""
    with tempfile.TemporaryDirectory(prefix="tulle-bench-writes-") as tmp:
        root = Path(tmp)
        with served(root / "store.db", root / "state") as kubeconfig:
            yield kubeconfig


class Api:
    """One kept-alive HTTPS connection with the kubeconfig's bearer token."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
        host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=cluster["certificate-authority"])
        self.conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
        self.headers = {
            "Authorization": f"Bearer {user['token']}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")


WATCHED = ("services", "pods", "endpointslices", "nodes", "namespaces", "networkpolicies",
           "secrets", "deployments")
GROUPS = {"endpointslices": "/apis/discovery.k8s.io/v1", "networkpolicies":
          "/apis/networking.k8s.io/v1", "deployments": "/apis/apps/v1"}


def open_watches(kubeconfig: Path, count: int) -> list[threading.Thread]:
    """``count`` watch streams over WATCHED, each drained by a thread until the server ends."""
    def drain(plural: str) -> None:
        api = Api(kubeconfig)
        try:
            api.conn.request("GET", f"{GROUPS.get(plural, '/api/v1')}/{plural}?watch=1",
                             headers=api.headers)
            resp = api.conn.getresponse()
            while resp.readline():
                pass
        except OSError:
            return

    threads = [threading.Thread(target=drain, args=(WATCHED[n % len(WATCHED)],), daemon=True)
               for n in range(count)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # every stream open before the first write
    return threads


def server_cpu_s() -> float:
    """utime + stime of this process's lab API server child (the bare server)."""
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == os.getpid() and b"lab.apiserver" in cmd:
            return (int(fields[11]) + int(fields[12])) / tick
    return float("nan")


def service(namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"w-{i}", "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def run(kubeconfig: Path, services: int, block: int, namespace: str,
        pause: float = 0.0) -> list[dict[str, Any]]:
    api = Api(kubeconfig)
    status, _ = api.send(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    if status not in (201, 409):
        raise SystemExit(f"could not create namespace {namespace}: HTTP {status}")
    rows = []
    path = f"/api/v1/namespaces/{namespace}/services"
    for start in range(0, services, block):
        began, cpu = time.perf_counter(), server_cpu_s()
        trips = []
        for i in range(start, min(services, start + block)):
            if pause:
                time.sleep(pause)
            sent = time.perf_counter()
            status, body = api.send("POST", path, service(namespace, i))
            trips.append((time.perf_counter() - sent) * 1000)
            if status != 201:
                raise SystemExit(f"Service {i}: HTTP {status}: {body}")
        seconds = time.perf_counter() - began
        count = min(services, start + block) - start
        trips.sort()
        rows.append(
            {
                "from": start,
                "to": start + count,
                "seconds": round(seconds, 2),
                "writes_per_s": round(count / (seconds - pause * count), 1),
                "write_ms_p50": round(statistics.median(trips), 2),
                "write_ms_p90": round(trips[int(0.9 * len(trips))], 2),
                "server_cpu_ms_per_write": round((server_cpu_s() - cpu) * 1000 / count, 2),
            }
        )
        print(
            f"• Services {start}..{start + count}: {count / seconds:.1f} writes/s",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--kubeconfig", type=Path, help="an existing server (default: a bare one)")
    parser.add_argument("--namespace", default="bench-writes")
    parser.add_argument("--watchers", type=int, default=0, help="watches open (bare server)")
    parser.add_argument("--pause", type=float, default=0.0, help="ms before each write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pause = args.pause / 1000
    if args.kubeconfig:
        rows = run(args.kubeconfig, args.services, args.block, args.namespace, pause)
    else:
        with bare_server() as kubeconfig:
            open_watches(kubeconfig, args.watchers)
            started = time.perf_counter()
            rows = run(kubeconfig, args.services, args.block, args.namespace, pause)
    total = time.perf_counter() - started
    print(
        json.dumps(
            {
                "services": args.services,
                "seconds": round(total, 1),
                "writes_per_s": round(args.services / total, 1),
                "blocks": rows,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
