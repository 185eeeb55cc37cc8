"""API write throughput (issue 10): Service creations through the lab API server, one client
loop on a kept-alive HTTPS connection, up to N Services, reported as writes/s per block of
1,000 (so the cost of a write at 10,000 Services shows apart from the cost at 0).

By default against a bare API server (``python -m lab.apiserver`` on a temp store, its own
process); with ``--kubeconfig`` against any server, e.g. a lab's
(``tulle lab kubeconfig``), where every node process reacts to each Service.

    python -m bench.control.kubectl_writes [--services 10000] [--block 1000]
        [--kubeconfig PATH] [--namespace bench-writes]
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import tempfile
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


def service(namespace: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"w-{i}", "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def run(kubeconfig: Path, services: int, block: int, namespace: str) -> list[dict[str, Any]]:
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
        began = time.perf_counter()
        for i in range(start, min(services, start + block)):
            status, body = api.send("POST", path, service(namespace, i))
            if status != 201:
                raise SystemExit(f"Service {i}: HTTP {status}: {body}")
        seconds = time.perf_counter() - began
        count = min(services, start + block) - start
        rows.append(
            {
                "from": start,
                "to": start + count,
                "seconds": round(seconds, 2),
                "writes_per_s": round(count / seconds, 1),
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
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.kubeconfig:
        rows = run(args.kubeconfig, args.services, args.block, args.namespace)
    else:
        with bare_server() as kubeconfig:
            rows = run(kubeconfig, args.services, args.block, args.namespace)
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
