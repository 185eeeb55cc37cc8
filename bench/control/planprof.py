"""CPU of an agent's first plan, part by part, pure (no kernel, no API server).

The objects are the first-sync bench's (bench/control/fsseed.py: N Services with one
EndpointSlice of E ready endpoints each, two Nodes), plus optional Pods, decoded once by the
controller's converter; then a fresh ``Planner`` plans them as ``DatapathController.resync``
does (cyclic GC paused), one part at a time:

- ``reset``: the planner's bookkeeping of 20,000 objects (Planner.reset/update);
- ``services``: ServiceState.plan(), of it ``maglev`` (maglev_slots: permutations + fill);
- ``endpoints, l7, assemble``: the rest of Planner.desired();
- ``rss_growth_mb``: VmRSS after the plan less before (what the plan holds; first run only,
  later runs reuse the freed memory of the one before).

CPU seconds (``time.process_time``) per part; ``--repeat`` plans again with fresh planners
in the same process (memos such as the address parser's are then warm: the first run is
the first sync's figure). ``--profile`` prints cProfile's top functions of the first run.

    PYTHONPATH=$PWD .venv/bin/python -m bench.control.planprof [--services 10000]
        [--endpoints 10] [--pods 0] [--repeat 3] [--profile] [--json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.control import fsseed

NODE = "node1"


def cluster(services: int, endpoints: int, pods: int) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": fsseed.NAMESPACE}}
    ]
    objs += [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node{n}"},
         "spec": {"podCIDR": f"10.244.{n}.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": f"10.0.0.{n}"}]}}
        for n in (1, 2)
    ]
    for i in range(services):
        svc = fsseed.service(i)
        svc["spec"]["clusterIP"] = fsseed.cluster_ip(i)
        objs.append(svc)
        objs.append(fsseed.endpoint_slice(i, endpoints))
    for n in range(pods):
        objs.append({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p-{n}", "namespace": fsseed.NAMESPACE, "uid": f"u{n}",
                         "labels": {"app": f"a{n // 10}"}},
            "spec": {"nodeName": f"node{n % 2 + 1}", "containers": [{"name": "c"}]},
            "status": {"podIP": fsseed.endpoint_ip(0, n, 1), "phase": "Running"},
        })
    return objs


class Clock:
    """CPU seconds spent inside one wrapped function (nested calls count once)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0
        self._depth = 0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            started = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.total += time.process_time() - started
                self.calls += 1
        return timed


@contextmanager
def part(row: dict[str, float], name: str) -> Iterator[None]:
    started = time.process_time()
    yield
    row[name] = round(time.process_time() - started, 3)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plan_once(resources: list[Any], maglev: Clock) -> dict[str, float]:
    from agent.datapath.planner import Planner

    row: dict[str, float] = {}
    maglev.total, maglev.calls = 0.0, 0
    planner = Planner(NODE)
    rss = _rss_mb()
    with part(row, "total"):
        with part(row, "reset"):
            planner.reset(resources)
        with part(row, "services"):
            plan = planner.services.plan()
        with part(row, "endpoints, l7, assemble"):
            desired = planner.desired()
    assert desired.services is plan
    row["rss_growth_mb"] = round(_rss_mb() - rss, 1)  # what the plan holds (first run)
    row["maglev"] = round(maglev.total, 3)
    row["maglev_tables"] = maglev.calls
    row["entries"] = len(plan.entries)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per Service")
    parser.add_argument("--pods", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the first run")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    from agent.datapath import services as svcs
    from agent.datapath.controller import WATCHED_KINDS
    from agent.kube import gcpause
    from agent.model.cache import ModelCache

    maglev = Clock()
    for name in ("maglev_slots", "maglev_tables"):  # what the tree's services.py calls
        if hasattr(svcs, name):
            setattr(svcs, name, maglev.wrap(getattr(svcs, name)))
    rows = []
    with gcpause.paused():  # as DatapathController.resync plans
        resources = ModelCache().decode_all(
            cluster(args.services, args.endpoints, args.pods), WATCHED_KINDS
        )
        for run in range(args.repeat):
            if run == 0 and args.profile:
                profiler = cProfile.Profile()
                rows.append(profiler.runcall(plan_once, resources, maglev))
                stats = pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime")
                stats.print_stats(int(os.environ.get("PROF_N", "25")))
            else:
                rows.append(plan_once(resources, maglev))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"services": args.services, "endpoints": args.services * args.endpoints,
              "pods": args.pods, "runs": rows, "peak_rss_mb": round(peak, 1),
              "tree": str(Path(svcs.__file__).resolve().parents[2])}
    if args.json:
        print(json.dumps(result))
    else:
        for n, row in enumerate(rows):
            print(f"run {n}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
        print(f"peak RSS {result['peak_rss_mb']} MB (objects included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
