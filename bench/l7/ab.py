"""``python -m bench.l7.ab BEFORE_TREE AFTER_TREE``: the waypoint from two source trees (a
``git worktree`` of the commit before a change, and the change), the same nginx backend,
route table, wrk load and flow drain as ``bench.l7``, in alternating rounds. Reports req/s
and the waypoint's CPU time per request (its core's user+system over the run, divided by
the requests wrk counted): the second is what a change costs the waypoint, whatever else
runs on the load core. Not a side-by-side with a peer: a before/after of one change.

``--before-args``/``--after-args`` add waypoint flags to one side, so one tree can be
measured against itself with a feature off and on: ``python -m bench.l7.ab T T
--before-args="--request-split off"`` is what the request split costs.
``--before-policies``/``--after-policies`` give a side some of issue 14's policies
(``bench.l7.policyset``: ``authz,ratelimit,outlier``, or ``all``; default none), so ``T T
--after-policies all --callgrind 20`` is what the policies cost per request.

``--callgrind SECONDS``: instead of CPU time, the waypoint's user-space instructions per
request, counted by valgrind's callgrind (one run per side: warmed up, counters zeroed,
SECONDS of wrk, dumped; requests by the waypoint's own count). Slow (~300 req/s) but
repeatable to ~0.1% run to run whatever else the machine runs, so it resolves costs of 1%
that CPU time on a shared machine does not; the dumps stay in the work directory for
``callgrind_annotate``. User space only: the kernel's share is not counted (count a
change's syscalls with ``strace -c -f -p``)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.l7 import peers, policy_bench, policyset, table
from bench.l7.peers import HOST, Proc
from bench.l7.wrk import parse_wrk, wrk_argv


def _waypoint(tree: Path, work: Path, config: str, tag: str, sock: Path, extra: list[str],
              tool: tuple[str, ...] = ()) -> tuple[Proc, tuple[str, int], int]:
    port, metrics = peers.free_port(), peers.free_port()
    path = work / f"tulle-{tag}.yaml"
    path.write_text(config.replace("LISTEN", f"{HOST}:{port}"))
    argv = [*peers.pinned(1), *tool, sys.executable, "-m", "l7proxy", "--config", str(path),
            "--listen", f"{HOST}:{port}", "--workers", "1", "--metrics", f"{HOST}:{metrics}",
            "--flows", f"unix:{sock}", *extra]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    here = os.getcwd()
    os.chdir(tree)  # ``-m l7proxy`` imports from the working directory first
    try:
        proc = Proc("tulle", argv, work / f"tulle-{tag}.log", env=env)
    finally:
        os.chdir(here)
    return proc, (HOST, port), metrics


def _callgrind_totals(path: Path) -> int:
    """The ``totals:`` (or ``summary:``) line of a callgrind dump: instructions."""
    for line in path.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError(f"{path}: no totals line")


def _instructions(name: str, tree: Path, work: Path, config: str, sock: Path,
                  extra: list[str], url_path: str, headers: tuple[tuple[str, str], ...],
                  connections: int, seconds: int) -> dict[str, float]:
    """One side under callgrind: instructions per request over ``seconds`` of wrk."""
    out = work / f"callgrind-{name}.out"
    tool = (peers.find_tool("valgrind"), "--tool=callgrind", f"--callgrind-out-file={out}")
    proc, address, metrics = _waypoint(tree, work, config, f"{name}-callgrind", sock, extra,
                                       tool)
    peer = peers.Peer("tulle", proc, address, ((HOST, metrics), "/metrics"))
    control = peers.find_tool("callgrind_control")
    try:
        peers.wait_http(address, url_path, headers, proc, timeout=240)
        url = f"http://{address[0]}:{address[1]}{url_path}"
        counts: list[int] = []
        for seconds_, tag in ((5, "warm"), (seconds, "run")):
            log = work / f"wrk-{name}-callgrind-{tag}.txt"
            load = Proc("wrk", wrk_argv(url, headers=headers, connections=connections,
                                        seconds=seconds_, cpu=0), log)
            load.wait(seconds_ + 60)
            load.stop()
            time.sleep(1)  # the requests wrk left in flight end (and are counted)
            if tag == "run":
                subprocess.run([control, "--dump", str(proc.pid)], check=True,
                               capture_output=True)
            # The waypoint's own count, read outside the counted window: wrk's count
            # misses or adds up to a connection's request at each end (~1% here).
            counted = peer.requests_counted()
            if counted is None:
                raise RuntimeError(f"no request count from the waypoint:\n{proc.tail()}")
            counts.append(counted)
            if tag == "warm":
                subprocess.run([control, "--zero", str(proc.pid)], check=True,
                               capture_output=True)
        requests = counts[1] - counts[0]
    finally:
        proc.stop(timeout=60)
    total = _callgrind_totals(Path(f"{out}.1"))
    print(f"{name}: {requests:,} requests, {total / requests:,.0f} instructions per request",
          flush=True)
    return {"requests": requests, "instructions": total,
            "instructions_per_request": total / requests}


def _config(routes: table.RouteTable, backend: str, parts: str) -> str:
    """The waypoint's config file with some of issue 14's policies (``parts``: comma
    separated, ``all``, or empty for none); ValueError names an unknown part."""
    if not parts:
        return table.tulle_config(routes, listen="LISTEN", backend=backend)
    chosen = policyset.PARTS if parts == "all" else tuple(p for p in parts.split(",") if p)
    return policy_bench.tulle_config(routes, listen="LISTEN", backend=backend, parts=chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.l7.ab", description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--before-args", default="", help="waypoint flags for BEFORE")
    parser.add_argument("--after-args", default="", help="waypoint flags for AFTER")
    parser.add_argument("--before-policies", default="", metavar="PARTS",
                        help="issue 14's policies for BEFORE: some of "
                             f"{','.join(policyset.PARTS)}, or all (default: none)")
    parser.add_argument("--after-policies", default="", metavar="PARTS",
                        help="the same for AFTER")
    parser.add_argument("--callgrind", type=int, metavar="SECONDS",
                        help="count instructions per request with callgrind instead")
    args = parser.parse_args(argv)
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    extra = {"before": shlex.split(args.before_args), "after": shlex.split(args.after_args)}
    backend = peers.free_port()
    routes = table.build()
    path, headers = routes.request()
    try:
        configs = {name: _config(routes, f"{HOST}:{backend}", parts) for name, parts in
                   (("before", args.before_policies), ("after", args.after_policies))}
    except ValueError as e:
        parser.error(str(e))
    work = Path(tempfile.mkdtemp(prefix="tulle-ab-"))
    nginx = peers.start_nginx(work, backend, 0)
    drain, sock = peers.start_drain(work, 0)
    rps: dict[str, list[float]] = {k: [] for k in trees}
    cpu: dict[str, list[float]] = {k: [] for k in trees}
    try:
        if args.callgrind:
            counted = {name: _instructions(name, trees[name], work, configs[name], sock,
                                           extra[name], path, headers, args.connections,
                                           args.callgrind)
                       for name in trees}
            ratio = (counted["after"]["instructions_per_request"]
                     / counted["before"]["instructions_per_request"])
            print(json.dumps({**counted, "ratio": ratio, "work": str(work)}, indent=1))
            return 0
        for r in range(args.rounds):
            for name in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                proc, address, _ = _waypoint(trees[name], work, configs[name], f"{name}-{r}", sock,
                                             extra[name])
                peers.wait_http(address, path, headers, proc)
                url = f"http://{address[0]}:{address[1]}{path}"
                used = 0.0
                for seconds, tag in ((1, "warm"), (args.duration, "run")):
                    before = sum(peers.cpu_seconds(proc.pid))
                    load = Proc("wrk", wrk_argv(url, headers=headers,
                                                connections=args.connections,
                                                seconds=seconds, cpu=0),
                                work / f"wrk-{name}-{r}-{tag}.txt")
                    load.wait(seconds + 30)
                    load.stop()
                    used = sum(peers.cpu_seconds(proc.pid)) - before
                result = parse_wrk((work / f"wrk-{name}-{r}-run.txt").read_text())
                proc.stop()
                rps[name].append(result.rps)
                cpu[name].append(used / result.requests * 1e6)
                print(f"round {r} {name}: {result.rps:,.0f} req/s, waypoint "
                      f"{cpu[name][-1]:.1f} µs CPU per request, errors {result.errors}",
                      flush=True)
    finally:
        drain.stop()
        nginx.stop()
    summary = {k: {"rps_median": statistics.median(rps[k]),
                   "cpu_us_per_request_median": statistics.median(cpu[k]),
                   "rps": rps[k], "cpu_us_per_request": cpu[k]} for k in trees}
    b, a = summary["before"], summary["after"]
    summary["ratios"] = {"rps": a["rps_median"] / b["rps_median"],
                         "cpu_per_request": (a["cpu_us_per_request_median"]
                                             / b["cpu_us_per_request_median"])}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
