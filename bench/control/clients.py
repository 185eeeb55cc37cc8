"""Choose the Kubernetes client library by measuring (issue 10 item 3).

A lab API server on loopback (a temp store, no lab, no root) holds 10,000 Services and
100,000 endpoints (1,000 EndpointSlices of 100); then 10,000 Service changes are written. Each
client, in its own process: full list of Services and of EndpointSlices (seconds), a watch of
Services from before the changes until it has seen all 10,000 (events/s), peak RSS.

``python -m bench.control.clients [--services 10000] [--changes 10000] [--only NAME]``
writes bench/results/clients-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.control.client_runs import RUNS
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials, write_kubeconfig
from lab.apiserver.server import ApiServer, tls_context
from lab.store import Store

RESULTS = Path(__file__).resolve().parents[1] / "results"
NAMESPACES = 10
SLICE_SIZE = 100


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"svc-{i}",
            "namespace": f"ns-{i % NAMESPACES}",
            "labels": {"app": f"a{i}"},
        },
        "spec": {
            "selector": {"app": f"a{i}"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
            "type": "ClusterIP",
        },
    }


def endpoint_slice(i: int) -> dict[str, Any]:
    """Slice i of Service i: 100 ready endpoints."""
    base = i * SLICE_SIZE
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{i}-abcde",
            "namespace": f"ns-{i % NAMESPACES}",
            "labels": {"kubernetes.io/service-name": f"svc-{i}"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [
                    f"10.{64 + (base + j) // 65536}.{(base + j) // 256 % 256}.{(base + j) % 256}"
                ],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node{j % 4 + 1}",
                "targetRef": {
                    "kind": "Pod",
                    "namespace": f"ns-{i % NAMESPACES}",
                    "name": f"p-{base + j}",
                },
            }
            for j in range(SLICE_SIZE)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def seed(store: Store, services: int, endpoints: int, changes: int) -> str:
    """Seed; return the resourceVersion just before the changes."""
    store.apply_many(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{n}"}}
            for n in range(NAMESPACES)
        ]
    )
    for start in range(0, services, 1000):
        store.apply_many([service(i) for i in range(start, min(services, start + 1000))])
    for start in range(0, endpoints // SLICE_SIZE, 100):
        store.apply_many(
            [endpoint_slice(i) for i in range(start, min(endpoints // SLICE_SIZE, start + 100))]
        )
    since = str(store.list("Namespace")[1])
    for start in range(0, changes, 1000):
        batch = []
        for i in range(start, min(changes, start + 1000)):
            svc = service(i % services)
            svc["metadata"]["labels"]["generation"] = str(i)
            batch.append(svc)
        store.apply_many(batch)
    return since


def run_client(name: str, kubeconfig: Path, since: str, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.control.client_runs",
            name,
            str(kubeconfig),
            since,
            str(count),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        return {"error": last[:200]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per field, the median over runs (the machine is shared: single runs are noisy)."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    return {k: statistics.median(r[k] for r in good) for k in good[0]} | {"runs": len(good)}


def markdown(meta: dict[str, Any], rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"# Kubernetes client libraries against the lab API server ({meta['date']})",
        "",
        f"{meta['services']} Services, {meta['endpoints']} endpoints in EndpointSlices of "
        f"{SLICE_SIZE}; watch of {meta['changes']} Service changes from before them. "
        f"Median of {meta['repeat']} runs, each in its own process; "
        "server on loopback (TLS) in the bench process. "
        f"Versions: {meta['versions']}.",
        "",
        "| client | list Services (s) | list EndpointSlices (s) | watch events/s "
        "| RSS after import (MB) | peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | error: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {name} | {r['list_services_s']} | {r['list_slices_s']} | {r['watch_events_per_s']} "
            f"| {r['rss_after_import_mb']} | {r['rss_peak_mb']} |"
        )
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("kubernetes", "kubernetes-asyncio", "lightkube", "kr8s"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.control.clients", description=__doc__)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per client; the median is kept")
    parser.add_argument("--only", action="append", choices=sorted(RUNS), help="run only these")
    parser.add_argument("--out", type=Path, default=None, help="report path stem")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="tulle-bench-clients-") as tmp:
        store = Store(Path(tmp) / "store.db", history=args.changes + 1000)
        bootstrap(store)
        t0 = time.perf_counter()
        since = seed(store, args.services, args.endpoints, args.changes)
        print(f"seeded in {time.perf_counter() - t0:.1f}s; watch from {since}", file=sys.stderr)
        creds = credentials(Path(tmp) / "state")
        api = Api(store, frozenset({creds.token}))
        server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
        kubeconfig = write_kubeconfig(Path(tmp) / "kubeconfig", "bench", server.url, creds)
        rows = {}
        try:
            for name in args.only or list(RUNS):
                runs = [
                    run_client(name, kubeconfig, since, args.changes) for _ in range(args.repeat)
                ]
                print(f"{name}: {runs}", file=sys.stderr)
                rows[name] = median_row(runs)
        finally:
            server.stop()
            store.close()
    meta = {
        "date": datetime.date.today().isoformat(),
        "services": args.services,
        "endpoints": args.endpoints,
        "changes": args.changes,
        "repeat": args.repeat,
        "versions": _versions(),
    }
    stem = args.out or RESULTS / f"clients-{meta['date']}"
    stem.with_suffix(".json").write_text(json.dumps({**meta, "clients": rows}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
