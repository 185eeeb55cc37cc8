"""The frame of a Tulle-vs-Envoy side-by-side of one kind of work (``grpc_bench``): options,
the processes started and stopped by pid (``peers.Proc``), a measurement (a load
generator's run, the peer's CPU from /proc, the peer's own count), alternating rounds, and
the results files. A subclass says how to start the backend and the two peers, how to
check they do the same work, and which load to run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.l4.wrk import WrkResult
from bench.l7 import peers, runinfo
from bench.l7.pair_report import PairRatio, PairResult, drops, markdown, pair_ratio
from bench.l7.peers import BenchError, Peer, Proc
from bench.l7.results import Measurement


@dataclass
class PairOptions:
    duration: int = 10
    warmup: int = 2
    rounds: int = 2
    peer_core: int = 1
    load_core: int = 0
    label: str = ""
    out: Path = runinfo.RESULTS
    log: Callable[[str], None] = field(default=lambda text: print(text, flush=True))


def parse_args(prog: str, doc: str, argv: Sequence[str] | None) -> PairOptions:
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load first")
    parser.add_argument("--rounds", type=int, default=2,
                        help="side-by-side rounds (Tulle then Envoy, then Envoy then Tulle, ...)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s, one round")
    parser.add_argument("--label", default="",
                        help="a tag for the results file and its heading (busy-smoke: the "
                             "machine was shared, the numbers are not a result)")
    parser.add_argument("--out", type=Path, default=runinfo.RESULTS)
    args = parser.parse_args(argv)
    opts = PairOptions(duration=args.duration, warmup=args.warmup, rounds=args.rounds,
                       label=args.label, out=args.out)
    if args.quick:
        opts.duration, opts.warmup, opts.rounds = 3, 1, 1
        opts.label = opts.label or "quick"
    if not 1 <= opts.duration <= 60 or not 1 <= opts.rounds <= 5 or not 0 <= opts.warmup <= 10:
        parser.error("--duration must be 1..60, --rounds 1..5, --warmup 0..10 "
                     "(keep the run bounded)")
    if opts.label and not opts.label.replace("-", "").isalnum():
        parser.error("--label: letters, digits and '-' only (it names the results file)")
    return opts


def env() -> dict[str, str]:
    """This tree on PYTHONPATH, for the waypoint and the drain."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{root}:{path}" if path else root,
            "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass
class Loaded:
    """A load generator's command line and how to read its report."""

    argv: list[str]
    log: Path
    parse: Callable[[str], WrkResult]


class PairRun(peers.ProcessOwner):
    unit = "req/s"

    def __init__(self, opts: PairOptions, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.problems: list[str] = []

    # --- what a benchmark provides ---------------------------------------------------

    def start_backend(self) -> Proc:
        raise NotImplementedError

    def tulle(self, flows: str, tag: str) -> Peer:
        raise NotImplementedError

    def envoy(self, access_log: str, tag: str) -> Peer:
        raise NotImplementedError

    def probe(self) -> list[dict[str, Any]]:
        """Checks that both peers do the same work: {what, ok, detail} each."""
        raise NotImplementedError

    def load(self, peer: Peer, name: str) -> Loaded:
        raise NotImplementedError

    def setup_info(self, tulle: Peer, envoy: Peer) -> dict[str, Any]:
        raise NotImplementedError

    # --- processes --------------------------------------------------------------------

    # --- one measurement ----------------------------------------------------------------

    def measure(self, peer: Peer, round_: int, name: str) -> Measurement:
        opts = self.opts
        loaded = self.load(peer, name)
        counted0 = peer.requests_counted()
        cpu0 = peers.cpu_seconds(peer.proc.pid)
        cores0 = peers.core_times()
        proc = self.started(Proc("load", loaded.argv, self.workdir / f"load-{name}.txt"))
        t0 = time.monotonic()
        code = proc.wait(opts.duration + opts.warmup + 30)
        wall = time.monotonic() - t0
        self.stop(proc)
        report = proc.log.read_text(errors="replace")
        if code != 0:
            raise BenchError(f"{loaded.argv[0]} exited {code}: {report.strip()[-600:]}")
        result = loaded.parse(report)
        cores = peers.core_busy(cores0, peers.core_times())
        user, system = peers.cpu_seconds(peer.proc.pid)
        used = (user - cpu0[0]) + (system - cpu0[1])
        # The load ran warm-up + duration; the peer's CPU is averaged over all of it.
        peer_cpu = round(used / wall, 3) if wall else None
        counted1 = peer.requests_counted()
        counted = counted1 - counted0 if counted0 is not None and counted1 is not None else None
        if result.errors:
            self.problems.append(f"{name}: {result.errors} errors ({result.socket_errors}, "
                                 f"non-2xx {result.non_2xx})")
        if counted is not None and counted < result.requests:
            self.problems.append(f"{name}: the peer counted {counted}, the load generator "
                                 f"{result.requests}")
        self.log(f"    {name}: {result.rps:,.0f} {self.unit}, p50 {result.p50_ms:.2f} ms, "
                 f"p99 {result.p99_ms:.2f} ms, peer CPU {peer_cpu}")
        return Measurement(peer.name, self.unit, round_, result, peer_cpu,
                           round((user - cpu0[0]) / used, 3) if used else None, cores, counted)

    # --- the run -------------------------------------------------------------------------

    def execute(self, title: str, command: str) -> PairResult:
        opts = self.opts
        began = time.monotonic()
        started = dt.datetime.now().astimezone()
        load_avg = os.getloadavg()
        self.log(f"{title}: backend, then a probe of both peers")
        backend = self.start_backend()
        drain, drain_path = peers.start_drain(self.workdir, opts.load_core)
        self.started(drain)
        checks = self.probe()
        if not all(c["ok"] for c in checks):
            raise BenchError("the two peers do not do the same work (MISMATCH above): "
                             "refusing to compare")
        tulle = self.tulle(f"unix:{drain_path}", "bench")
        envoy = self.envoy("/dev/null", "bench")
        measurements: list[Measurement] = []
        ratios: list[PairRatio] = []
        for round_ in range(1, opts.rounds + 1):
            order = [tulle, envoy] if round_ % 2 else [envoy, tulle]
            self.log(f"  round {round_}: {' then '.join(p.name for p in order)}")
            got = {p.name: self.measure(p, round_, f"{p.name}-r{round_}") for p in order}
            measurements += [got[p.name] for p in order]
            ratios.append(pair_ratio(round_, got["tulle"], got["envoy"]))
        setup = {**self.setup_info(tulle, envoy), "rounds": opts.rounds,
                 "cores": f"peer core {opts.peer_core}, load core {opts.load_core}",
                 "priority": f"each process in its own session, autogroup nice {peers.BOOST}",
                 "versions": runinfo.versions(), "git": runinfo.git_info()}
        for proc in (tulle.proc, envoy.proc, drain, backend):
            self.stop(proc)
        return PairResult(
            title=title, unit=self.unit, date=started.strftime("%Y-%m-%d"),
            started=started.isoformat(timespec="seconds"), command=command,
            label=opts.label, setup=setup,
            machine=runinfo.machine_info(load_avg, measurements), checks=checks,
            measurements=measurements, ratios=ratios,
            problems=self.problems + drops(measurements),
            seconds=time.monotonic() - began)


def main(opts: PairOptions, run_class: Callable[[PairOptions, Path], PairRun], title: str,
         command: str, kind: str, tools: Sequence[str]) -> int:
    """Run one side-by-side and write ``l7-<date>-<kind>[-label].md`` and ``.json``."""
    if len(os.sched_getaffinity(0)) < 2:
        print(f"{kind}: needs two cores (one for the proxy, one for the load)", file=sys.stderr)
        return 2
    try:
        for tool in tools:
            peers.find_tool(tool)
        peers.find_tool("envoy", venv=True)
    except BenchError as exc:
        print(f"{kind}: {exc} (h2load: Debian nghttp2-client)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {opts.load_core})  # the driver stays off the peer core

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    workdir = Path(tempfile.mkdtemp(prefix=f"tulle-bench-{kind}-"))
    run = run_class(opts, workdir)
    try:
        result = run.execute(title, command)
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"{kind}: failed: {exc}\n  logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{kind}: interrupted; logs in {workdir}", file=sys.stderr)
        return 130
    finally:
        run.stop_all()
    opts.out.mkdir(parents=True, exist_ok=True)
    base = runinfo.output_base(opts.out, result.date, "-".join(filter(None, (kind, opts.label))))
    base.with_suffix(".json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    base.with_suffix(".md").write_text(markdown(result, base.name))
    print(f"\ntarget met: {result.met} (Tulle/Envoy {result.unit}: mean {result.mean_ratio}, "
          f"rounds {[r.rate for r in result.ratios]})\nresults: {base.with_suffix('.md')}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0
