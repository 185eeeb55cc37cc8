"""What one EndpointSlice change costs the agent's datapath controller: full replan (the
controller before issue 10 item 4) against the incremental planner, at 10 and 10,000
Services, pure (no kernel): map writes are counted, not made.

Each size runs in its own process per path (so peak RSS is that path's), on the objects an
informer would hold: N Services with one EndpointSlice of E ready endpoints each (10,000 x 10
= 100,000 endpoints), 10 Namespaces, 4 Nodes, optional Pods. Per process:

- first full sync: decode every object, plan, apply (map writes stubbed), build the flow
  enricher's index; seconds and peak RSS (ru_maxrss, which includes the objects themselves);
- then C EndpointSlice changes (an endpoint replaced in a different Service each time), each
  timed from the changed object (a dict, as an informer hands it over) to the map writes
  decided, index rebuilt when needed.

``full`` runs main's controller sync: decode_all over every object (cached, unchanged ones
are lookups), view_of, l7_keys, desired_datapath, apply, endpoint_index. ``incremental``
runs DatapathController.apply_changes: decode the one object, Planner.update, desired,
apply. ``resync`` runs DatapathController.resync with every object, as agent/daemon.py
calls it today (``sync``): the planner finds the one changed object itself. All use the
same Applier with stubbed map writes.

``python -m bench.control.replan [--sizes 10,10000] [--endpoints-per-service 10]
[--pods 0] [--changes 50]`` writes bench/results/replan-<date>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

from gatewayapi import RouteCompiler

RESULTS = Path(__file__).resolve().parents[1] / "results"
NAMESPACES = 10
NODES = 4
NODE = "node1"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"svc-{i}",
            "namespace": f"ns-{i % NAMESPACES}",
            "resourceVersion": str(i + 100),
        },
        "spec": {
            "selector": {"app": f"a{i}"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
            "type": "ClusterIP",
        },
    }


def address(n: int) -> str:
    return f"10.{64 + n // 65536}.{n // 256 % 256}.{n % 256}"


def endpoint_slice(i: int, size: int, version: int, shift: int = 0) -> dict[str, Any]:
    """Service i's slice; ``shift`` replaces its first endpoint with a fresh address."""
    base = i * size
    addresses = [address(base + j) for j in range(size)]
    if shift and addresses:
        addresses[0] = address(10_000_000 + shift)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{i}-abcde",
            "namespace": f"ns-{i % NAMESPACES}",
            "labels": {"kubernetes.io/service-name": f"svc-{i}"},
            "resourceVersion": str(version),
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [a],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node{j % NODES + 1}",
            }
            for j, a in enumerate(addresses)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def pod(n: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"p-{n}",
            "namespace": f"ns-{n % NAMESPACES}",
            "uid": f"uid-{n}",
            "labels": {"app": f"a{n // 10}"},
            "resourceVersion": str(n + 10_000_000),
        },
        "spec": {"nodeName": f"node{n % NODES + 1}", "containers": [{"name": "c"}]},
        "status": {"podIP": address(n), "phase": "Running"},
    }


def cluster(services: int, per_service: int, pods: int, backed: int) -> list[dict[str, Any]]:
    """``backed``: how many Services (the first ones) have a slice of ``per_service``."""
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{n}"}}
        for n in range(NAMESPACES)
    ]
    objs += [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": f"node{n + 1}", "resourceVersion": "1"},
            "spec": {"podCIDR": f"10.244.{n + 1}.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": f"10.240.0.{n + 2}"}]},
        }
        for n in range(NODES)
    ]
    objs += [service(i) for i in range(services)]
    objs += [endpoint_slice(i, per_service, 1_000_000 + i) for i in range(backed)]
    objs += [pod(n) for n in range(pods)]
    return objs


class _Table:
    max_entries = 1 << 20

    def items(self) -> list[Any]:
        return []

    def keys(self) -> list[Any]:
        return []


class NoMaps:
    """Enough of programs.Datapath for the Applier to adopt nothing."""

    programs_loaded = True

    def table(self, _name: str) -> _Table:
        return _Table()


def stub_map_writes(writes: list[Any]) -> Any:
    from agent.datapath import maps

    def write_service(*args: Any, **_: Any) -> Any:
        writes.append(args[1:4])
        return maps.ServiceSlot(0, len(args[4]))

    noop = mock.MagicMock()
    return mock.patch.multiple(
        maps,
        write_service=write_service,
        delete_service=noop,
        write_ipcache=noop,
        delete_ipcache=noop,
        write_policy_rule=noop,
        delete_policy_rule=noop,
        write_cidr_rule=noop,
        delete_cidr_rule=noop,
        write_l7_client=noop,
        delete_l7_client=noop,
        write_waypoint=noop,
        write_ct_endpoint_quota=noop,
        write_endpoint=noop,
        delete_endpoint=noop,
    )


def run_path(
    path: str, services: int, per_service: int, pods: int, changes: int, backed: int
) -> dict[str, Any]:
    """One process, one path: first sync, then ``changes`` EndpointSlice changes."""
    from agent.datapath.controller import WATCHED_KINDS, DatapathController, endpoint_index
    from agent.datapath.desired import desired_datapath, l7_keys, view_of
    from agent.flows.store import FlowRing

    rss_start = _rss_mb()
    objs = cluster(services, per_service, pods, backed)
    rss_objects = _rss_mb()
    writes: list[Any] = []
    with stub_map_writes(writes):
        controller = DatapathController(NODE, NoMaps(), FlowRing(16))  # type: ignore[arg-type]
        controller.ipr.close()  # only veth lookups use it, and no endpoint is local
        previous: Any = None
        routes = RouteCompiler()

        def full_sync() -> None:
            """main's DatapathController.sync before the planner (bench replica)."""
            nonlocal previous
            view = view_of(controller.models.decode_all(objs, WATCHED_KINDS))
            desired = desired_datapath(view, NODE, previous, l7_keys(view, routes))
            previous = desired.services
            controller.applier.apply(desired)
            controller.index = endpoint_index(view, desired, NODE)

        wall, cpu = time.perf_counter(), time.process_time()
        if path == "full":
            full_sync()
        else:
            controller.resync(objs)
        first = (time.perf_counter() - wall, time.process_time() - cpu)
        first_writes = len(writes)
        peak_first = _peak_mb()
        timings, cpu_timings, write_counts = [], [], []
        slice_base = len(objs) - pods - backed
        for c in range(changes):
            i = (c * 7919) % backed
            changed = endpoint_slice(i, per_service, 2_000_000 + c, shift=c + 1)
            old, objs[slice_base + i] = objs[slice_base + i], changed
            writes.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            if path == "full":
                full_sync()
            elif path == "resync":
                controller.resync(objs)
            else:
                from agent.datapath.controller import ObjectChange  # not in the code before

                meta = changed["metadata"]
                delta = ObjectChange("EndpointSlice", meta["namespace"], meta["name"], old, changed)
                controller.apply_changes([delta])
            timings.append(time.perf_counter() - wall)
            cpu_timings.append(time.process_time() - cpu)
            write_counts.append(len(writes))
        assert controller.errors == (), controller.errors
    return {
        "path": path,
        "services": services,
        "endpoints": backed * per_service,
        "services_with_endpoints": backed,
        "pods": pods,
        "first_sync_s": round(first[0], 3),
        "first_sync_cpu_s": round(first[1], 3),
        "first_sync_service_writes": first_writes,
        "rss_start_mb": round(rss_start, 1),
        "rss_objects_mb": round(rss_objects, 1),
        "peak_rss_after_first_sync_mb": round(peak_first, 1),
        "change_ms_p50": round(statistics.median(timings) * 1000, 2),
        "change_ms_p99": round(_quantile(timings, 0.99) * 1000, 2),
        "change_ms_max": round(max(timings) * 1000, 2),
        "change_cpu_ms_p50": round(statistics.median(cpu_timings) * 1000, 2),
        "changes": changes,
        "service_writes_per_change": sorted(set(write_counts)),
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_child(args: list[str], tree: Path | None = None) -> dict[str, Any]:
    """One row in its own process; ``tree``: import the agent from that checkout instead."""
    env = dict(os.environ, PYTHONPATH=str(tree)) if tree else None
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
        cwd=tree,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed: {done.stderr.strip()[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# One EndpointSlice change: full replan vs incremental planner ({meta['date']})",
        "",
        "Pure (no kernel): map writes stubbed and counted. Each Service has one port; the "
        "first ones have one EndpointSlice each (slice size in the table), the rest none; "
        f"{meta['pods']} Pods; "
        f"{meta['changes']} changes per row, each replacing one endpoint of a different Service. "
        "One process per row (peak RSS is that path's, objects included). "
        "`python -m bench.control.replan`; machine: 2 cores, shared.",
        "",
        "| Services | endpoints (slice size) | path | first sync (s) | first sync CPU (s) "
        "| peak RSS (MB) | objects alone (MB) | change p50 (ms) | p99 (ms) | max (ms) "
        "| change CPU p50 (ms) | service writes per change |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        objects_mb = r["rss_objects_mb"] - r["rss_start_mb"]
        slice_size = r["endpoints"] // r["services_with_endpoints"]
        lines.append(
            f"| {r['services']} | {r['endpoints']} ({slice_size})"
            f" | {r['path']} | {r['first_sync_s']} "
            f"| {r['first_sync_cpu_s']} | {r['peak_rss_after_first_sync_mb']} | {objects_mb:.1f} "
            f"| {r['change_ms_p50']} | {r['change_ms_p99']} | {r['change_ms_max']} "
            f"| {r['change_cpu_ms_p50']} | {', '.join(map(str, r['service_writes_per_change']))} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.control.replan", description=__doc__)
    parser.add_argument("--sizes", default="10,10000", help="Service counts, comma-separated")
    parser.add_argument("--endpoints-per-service", type=int, default=10, help="on average")
    parser.add_argument(
        "--slice-sizes",
        default="10,100",
        help="endpoints per slice: 10 gives every Service a slice; 100 a tenth of them "
        "(bench.control.clients' shape); the second and later only at the largest size",
    )
    parser.add_argument("--pods", type=int, default=0)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--full-changes", type=int, default=20, help="changes timed on full")
    parser.add_argument("--paths", default="full,resync,incremental")
    parser.add_argument("--out", type=Path, default=None, help="report path stem")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a checkout of the code before the planner (git worktree add /tmp/x main): "
        "its full path is measured too, as 'full (before)'",
    )
    parser.add_argument(
        "--child", nargs=6, metavar=("PATH", "N", "SLICE", "PODS", "CHANGES", "BACKED")
    )
    args = parser.parse_args(argv)
    if args.child:
        path, n, e, pods, changes, backed = args.child
        row = run_path(path, int(n), int(e), int(pods), int(changes), int(backed))
        print(json.dumps(row))
        return 0
    rows = []
    sizes = [int(s) for s in args.sizes.split(",")]
    slice_sizes = [int(s) for s in args.slice_sizes.split(",")]
    runs = [(n, slice_sizes[0]) for n in sizes] + [(max(sizes), s) for s in slice_sizes[1:]]
    for size, slice_size in runs:
        backed = max(1, size * args.endpoints_per_service // slice_size)
        for path in args.paths.split(","):
            changes = args.changes if path == "incremental" else args.full_changes
            row = run_child(
                [path, str(size), str(slice_size), str(args.pods), str(changes), str(backed)]
            )
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
        if args.before:
            row = run_child(
                [
                    "full",
                    str(size),
                    str(slice_size),
                    str(args.pods),
                    str(args.full_changes),
                    str(backed),
                ],
                args.before,
            )
            row["path"] = "full (before)"
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    meta = {
        "date": datetime.date.today().isoformat(),
        "endpoints_per_service": args.endpoints_per_service,
        "pods": args.pods,
        "changes": f"{args.full_changes} (full, resync) / {args.changes} (incremental)",
    }
    stem = args.out or RESULTS / f"replan-{meta['date']}"
    stem.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(meta, rows))
    print(markdown(meta, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
