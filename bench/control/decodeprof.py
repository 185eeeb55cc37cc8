"""The informers' list decode at first-sync scale, fast path against general path.

Seeds a lab API server as bench/control/firstsync.py does (N Services with one EndpointSlice
of E endpoints each), then, in a fresh process per path, lists Services and EndpointSlices
the way the agent's informers do (agent.kube.informer, transform ``to_model``) and splits
each list's CPU time: JSON decode (and the fast path's model building) per page, placing
(key, revision, transform: the general path's conversion) and the rest (HTTP client). The
``general`` path uses a plain-function transform, so the informer takes the pre-fast-path
route: plain JSON decode, compaction, then the converter per object.

    PYTHONPATH=$PWD .venv/bin/python -m bench.control.decodeprof [--services 10000]
        [--endpoints 10] [--paths fast,general] [--profile DIR]

No root needed (loopback only). ``--profile DIR`` writes a cProfile per path and kind.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("Service", "EndpointSlice")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CpuTimer:
    """CPU seconds spent in calls to one wrapped method."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += _cpu() - started
        return timed


def child(kubeconfig: str, path: str, profile: str | None) -> dict[str, Any]:
    from agent.kube.gcpause import paused
    from agent.kube.informer import Informer
    from agent.kube.models import to_model
    from agent.kube.resources import resource_for
    from agent.kube.source import connect

    def general(obj: Any) -> Any:  # no decode_page: the informer's general route
        return to_model(obj)

    client = connect(kubeconfig)
    rows: dict[str, Any] = {}
    for kind in KINDS:
        inf: Informer[Any] = Informer(client, resource_for(kind),
                                      transform=general if path == "general" else to_model)
        decode, place = CpuTimer(), CpuTimer()
        inf._decode_page = decode.wrap(inf._decode_page)  # type: ignore[method-assign]  # noqa: SLF001
        inf._placeable = place.wrap(inf._placeable)  # type: ignore[method-assign]  # noqa: SLF001
        wall, cpu = time.monotonic(), _cpu()
        with paused():  # as the agent's startup hold keeps the collector off
            if profile:
                import cProfile

                cProfile.runctx("inf._list()", globals(), {"inf": inf},
                                f"{profile}/{path}-{kind}.prof")
            else:
                inf._list()  # noqa: SLF001 - one full list, as run() starts
        rows[kind] = {"objects": len(inf.cache.objects),
                      "wall_s": round(time.monotonic() - wall, 3),
                      "cpu_s": round(_cpu() - cpu, 3),
                      "decode_cpu_s": round(decode.total, 3),
                      "place_cpu_s": round(place.total, 3)}
    rows["peak_rss_mb"] = round(_hwm_mb(), 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--paths", default="fast,general")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path, alternating")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        profile = str(args.profile) if args.profile else None
        print(json.dumps(child(args.child, args.path, profile)))
        return 0
    from bench.control.firstsync import api_server

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="decodeprof-") as tmp:
        with api_server(Path(tmp), args.services, args.endpoints) as kubeconfig:
            for _ in range(args.repeat):
                for path in args.paths.split(","):
                    argv_ = [sys.executable, "-m", "bench.control.decodeprof", "--child",
                             str(kubeconfig), "--path", path,
                             *(["--profile", str(args.profile)] if args.profile else [])]
                    out = subprocess.run(argv_, check=True, capture_output=True, text=True)
                    runs.append((path, json.loads(out.stdout.strip().splitlines()[-1])))
    print("Medians over the runs (CPU: the client process's; wall: with the API server)\n")
    print("| path | kind | objects | list wall s | list CPU s | decode CPU s | place CPU s "
          "| peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for path in dict.fromkeys(p for p, _ in runs):
        mine = [rows for p, rows in runs if p == path]
        for kind in KINDS:
            r = {k: round(statistics.median(rows[kind][k] for rows in mine), 3)
                 for k in ("objects", "wall_s", "cpu_s", "decode_cpu_s", "place_cpu_s")}
            hwm = statistics.median(rows["peak_rss_mb"] for rows in mine)
            print(f"| {path} | {kind} | {int(r['objects'])} | {r['wall_s']} | {r['cpu_s']} "
                  f"| {r['decode_cpu_s']} | {r['place_cpu_s']} | {hwm} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
