"""``python -m bench.l7`` (``make bench-l7``): Tulle's waypoint against Envoy, side by side,
one core each, the same 50-rule route table, the same nginx backend, wrk with 32
keep-alive connections. Results: ``bench/results/l7-<date>.md`` and ``.json``.

Cores: the proxy under test runs alone on the peer core (1); wrk, nginx, the flow drain
and this driver share the load core (0). Every measurement runs on the same layout, so
both proxies see the same backend and load generator.
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

from bench.l7 import peers, profile, report, table
from bench.l7.peers import HOST, BenchError, Peer, Proc
from bench.l7.results import Measurement, ProbeResult, RoundRatio, RunResult, ratio
from bench.l7.runinfo import REPO, RESULTS, git_info, machine_info, output_base, versions
from bench.l7.wrk import parse_wrk, wrk_argv, wrk_problem

TULLE_FLOWS = "unix"
TULLE_VARIANT = "metrics on (/metrics served), flows --flows unix:PATH (JSON to the agent socket)"
ENVOY_VARIANT = "default stats (admin /stats), JSON access log (14 fields) to /dev/null"


@dataclass
class Options:
    duration: int = 10
    warmup: int = 2
    connections: int = 32
    rounds: int = 2
    peer_core: int = 1
    load_core: int = 0
    diagnostics: bool = True
    profile: str = "auto"
    """auto: profile the waypoint when it misses the target; always; never."""
    out: Path = RESULTS
    tag: str = ""
    keep: bool = False
    log: Callable[[str], None] = field(default=lambda text: print(text, flush=True))


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.l7", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load first")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2,
                        help="side-by-side rounds (Tulle then Envoy, then Envoy then Tulle, ...)")
    parser.add_argument("--no-diagnostics", action="store_true",
                        help="skip the Tulle flows count/off and nginx-alone runs")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="py-spy the waypoint under the same load (auto: when short)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 s, one round, no diagnostics or profile")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    opts = Options(duration=args.duration, warmup=args.warmup, connections=args.connections,
                   rounds=args.rounds, diagnostics=not args.no_diagnostics,
                   profile=args.profile, out=args.out, keep=args.keep)
    if args.quick:
        opts.duration, opts.warmup, opts.rounds = 3, 1, 1
        opts.diagnostics, opts.profile, opts.tag = False, "never", "quick"
    if opts.duration < 1 or opts.duration > 60 or opts.rounds < 1 or opts.rounds > 5:
        parser.error("--duration must be 1..60 and --rounds 1..5 (keep the run bounded)")
    return opts


class Run(peers.ProcessOwner):
    def __init__(self, opts: Options, workdir: Path) -> None:
        self.opts = opts
        self.workdir = workdir
        self.table = table.build()
        self.path, self.headers = self.table.request()
        self.script: str | None = None
        """A wrk Lua script writing the measured requests (None: ``path`` repeated)."""
        self.procs: list[Proc] = []
        self.problems: list[str] = []
        self.backend_port = peers.free_port()
        self.step = 0

    # --- the peers ---------------------------------------------------------------

    def tulle(self, flows: str, tag: str) -> Peer:
        port, metrics = peers.free_port(), peers.free_port()
        config = table.tulle_config(self.table, listen=f"{HOST}:{port}",
                                    backend=f"{HOST}:{self.backend_port}")
        peer = peers.start_tulle(self.workdir, config, port, metrics, self.opts.peer_core,
                                 flows, self.path, self.headers, tag)
        self.started(peer.proc)
        return peer

    def envoy(self, access_log: str, tag: str) -> Peer:
        port, admin = peers.free_port(), peers.free_port()
        bootstrap = table.envoy_config(self.table, listen=(HOST, port),
                                       backend=(HOST, self.backend_port), admin=(HOST, admin),
                                       access_log=access_log)
        peer = peers.start_envoy(self.workdir, bootstrap, port, admin, self.opts.peer_core,
                                 self.path, self.headers, tag)
        self.started(peer.proc)
        return peer

    # --- load ----------------------------------------------------------------------

    def wrk(self, address: peers.Address, seconds: int, name: str) -> Proc:
        url = f"http://{address[0]}:{address[1]}{self.path}"
        argv = wrk_argv(url, headers=self.headers, connections=self.opts.connections,
                        seconds=seconds, cpu=self.opts.load_core, script=self.script)
        return self.started(Proc("wrk", argv, self.workdir / f"wrk-{name}.txt"))

    def finish_wrk(self, proc: Proc, seconds: int) -> str:
        code = proc.wait(seconds + 30)
        self.stop(proc)
        text = proc.log.read_text(errors="replace")
        if code != 0:
            raise BenchError(f"wrk exited {code}: {text.strip()[-600:]}")
        return text

    def measure(self, peer: Peer | None, address: peers.Address, variant: str,
                round_: int, name: str, denied: float = 0.0) -> Measurement:
        """``denied``: the share of the requests the peer should answer 403 (policies)."""
        opts = self.opts
        if opts.warmup:
            self.finish_wrk(self.wrk(address, opts.warmup, f"{name}-warmup"), opts.warmup)
        counted0 = peer.requests_counted() if peer else None
        pid = peer.proc.pid if peer else None
        cpu0 = peers.cpu_seconds(pid) if pid else (0.0, 0.0)
        cores0 = peers.core_times()
        t0 = time.monotonic()
        load = self.wrk(address, opts.duration, name)
        text = self.finish_wrk(load, opts.duration)
        wall = time.monotonic() - t0
        cores = peers.core_busy(cores0, peers.core_times())
        result = parse_wrk(text)
        peer_cpu = user_share = None
        if pid:
            user, system = peers.cpu_seconds(pid)
            used = (user - cpu0[0]) + (system - cpu0[1])
            peer_cpu = round(used / wall, 3)
            user_share = round((user - cpu0[0]) / used, 3) if used else None
        counted1 = peer.requests_counted() if peer else None
        counted = counted1 - counted0 if counted0 is not None and counted1 is not None else None
        problem = wrk_problem(result, denied)
        if problem:
            self.problems.append(f"{name}: {problem}")
        if counted is not None and counted < result.requests:
            self.problems.append(f"{name}: the peer counted {counted} requests, wrk "
                                 f"{result.requests}: its metrics are not counting every one")
        measurement = Measurement(peer.name if peer else "nginx", variant, round_, result,
                                  peer_cpu, user_share, cores, counted)
        self.log(f"    {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                 f"p99 {result.p99_ms:.2f} ms, peer CPU {peer_cpu if peer_cpu else '-'}")
        return measurement

    # --- the steps -------------------------------------------------------------------

    def probe(self) -> list[ProbeResult]:
        """Both peers answer the same requests with the same rule (Tulle: its flow's
        ``tulle.rule``; Envoy: ``%ROUTE_NAME%`` in the access log)."""
        probes = self.table.probes()
        tulle = self.tulle("stdout", "probe")
        tulle_status = [peers.request(tulle.address, p.path, p.headers)[0] for p in probes]
        time.sleep(0.6)  # the flow batch timer is 0.2 s
        self.stop(tulle.proc)
        flows = [json.loads(line)["flow"] for line in tulle.proc.log.read_text().splitlines()
                 if line.startswith("{")][-len(probes):]
        tulle_rules = [(f.get("tulle") or {}).get("rule") or None for f in flows]
        log_path = self.workdir / "envoy-access.log"
        envoy = self.envoy(str(log_path), "probe")
        envoy_status = [peers.request(envoy.address, p.path, p.headers)[0] for p in probes]
        time.sleep(1.2)  # Envoy flushes access logs every second
        self.stop(envoy.proc)
        entries = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        envoy_rules = [e.get("route") if e.get("route") not in ("-", "") else None
                       for e in entries[-len(probes):]]
        for rules in (tulle_rules, envoy_rules):
            rules += [None] * (len(probes) - len(rules))
        out = [
            ProbeResult(p.path, list(p.headers), p.rule, (ts, tr), (es, er))
            for p, ts, tr, es, er in zip(probes, tulle_status, tulle_rules, envoy_status,
                                         envoy_rules, strict=True)
        ]
        for result in out:
            self.log(f"    {result.path} {dict(result.headers) or ''} -> want "
                     f"{result.expected or '404'}: tulle {result.tulle}, envoy {result.envoy}"
                     f"{'' if result.agree else '  MISMATCH'}")
        return out

    def execute(self) -> RunResult:
        opts = self.opts
        began = time.monotonic()
        started = dt.datetime.now().astimezone()
        load_avg_start = os.getloadavg()
        self.log(f"bench-l7: {len(self.table.rules)} rules, request {self.path} "
                 f"{dict(self.headers)} hits {self.table.target.name} "
                 f"(#{self.table.target_position} in evaluation order)")
        self.log(f"  backend: nginx on core {opts.load_core}, 127.0.0.1:{self.backend_port}")
        nginx = self.started(peers.start_nginx(self.workdir, self.backend_port, opts.load_core))
        drain, drain_path = peers.start_drain(self.workdir, opts.load_core)
        self.started(drain)

        self.log("  probe: do both peers pick the same rule?")
        probes = self.probe()
        if not all(p.agree for p in probes):
            raise BenchError("the two route tables do not agree (see MISMATCH above): "
                             "refusing to compare unequal work")

        self.log(f"  side by side: {opts.rounds} round(s) of {opts.duration} s per peer "
                 f"(+{opts.warmup} s warm-up), wrk -t1 -c{opts.connections}")
        tulle = self.tulle(f"unix:{drain_path}", "bench")
        envoy = self.envoy("/dev/null", "bench")
        measurements: list[Measurement] = []
        ratios: list[RoundRatio] = []
        for round_ in range(1, opts.rounds + 1):
            order = [tulle, envoy] if round_ % 2 else [envoy, tulle]
            self.log(f"  round {round_}: {' then '.join(p.name for p in order)}")
            got: dict[str, Measurement] = {}
            for peer in order:
                variant = TULLE_VARIANT if peer is tulle else ENVOY_VARIANT
                got[peer.name] = self.measure(peer, peer.address, variant, round_,
                                              f"{peer.name}-r{round_}")
                measurements.append(got[peer.name])
            ratios.append(ratio(round_, got["tulle"], got["envoy"]))

        result = RunResult(
            date=started.strftime("%Y-%m-%d"),
            started=started.isoformat(timespec="seconds"),
            setup=self.setup(tulle, envoy),
            machine={},
            table=self.table_info(),
            probes=probes,
            measurements=measurements,
            ratios=ratios,
            diagnostics=[],
            flows={},
        )
        short = not result.met
        if opts.profile == "always" or (opts.profile == "auto" and short):
            result.profile = self.profile(tulle)
        if opts.diagnostics:
            result.syscalls = self.syscalls(tulle, envoy)
        self.stop(envoy.proc)
        if opts.diagnostics:
            result.diagnostics = self.diagnose(tulle)
        tulle_counted = tulle.requests_counted()
        self.stop(tulle.proc)

        drained = peers.drain_count(drain)
        self.stop(drain)
        result.flows = {
            "sink": f"--flows unix:{drain_path.name}: FlowForwarder (a JSON array of compact "
                    "records per line) to a drain that counts the flows in them "
                    "(bench.l7.drain, on the load core)",
            "requests_counted_by_waypoint": tulle_counted,
            "flows_received": drained,
        }
        self.stop(nginx)
        result.machine = machine_info(load_avg_start, measurements)
        result.problems = self.problems
        result.seconds = time.monotonic() - began
        return result

    def diagnose(self, tulle: Peer) -> list[Measurement]:
        """Where Tulle's cost is, by switching things off (not part of the comparison),
        back to back so the machine's drift does not blur the differences: the waypoint as
        measured again, then with flows built but dropped (count), with flows off, and
        nginx alone (what the load core can do without a proxy)."""
        self.log("  diagnostics (not part of the comparison)")
        out = [self.measure(tulle, tulle.address, TULLE_VARIANT, 0, "tulle-flows-unix")]
        for flows, variant in (
            ("count", "metrics on, flows --flows count (built, then dropped)"),
            ("off", "metrics on, flows off"),
        ):
            peer = self.tulle(flows, flows)
            out.append(self.measure(peer, peer.address, variant, 0, f"tulle-flows-{flows}"))
            self.stop(peer.proc)
        out.append(self.measure(None, (HOST, self.backend_port),
                                "no proxy: wrk straight to nginx (both on the load core)",
                                0, "nginx-alone"))
        return out

    def syscalls(self, tulle: Peer, envoy: Peer) -> dict[str, Any]:
        """Syscalls per request of each peer under the same load (strace -c)."""
        try:
            peers.find_tool("strace")
        except BenchError:
            self.problems.append("strace not installed: no syscall counts")
            return {}
        self.log("  syscalls per request (strace -c, under load)")
        out: dict[str, Any] = {}
        for peer in (tulle, envoy):
            load = self.wrk(peer.address, 7, f"strace-{peer.name}")
            time.sleep(1.0)
            out[peer.name] = peers.count_syscalls(peer, self.workdir, 3.0, self.opts.load_core)
            self.finish_wrk(load, 7)
            self.log(f"    {peer.name}: {out[peer.name].get('per_request')}")
        return out

    def profile(self, tulle: Peer) -> dict[str, Any]:
        """py-spy on the waypoint under the same load: folded stacks (analysed into
        stages) and a flame graph SVG. py-spy runs on the load core and does not stop the
        waypoint to sample (``--nonblocking``): stopping it (the default, and what
        ``--native`` needs) costs this machine over half the waypoint's throughput and
        skews the picture towards syscalls."""
        opts = self.opts
        self.log("  profile: py-spy on the waypoint under the same load")
        out: dict[str, Any] = {}
        for fmt, suffix in (("raw", "folded"), ("flamegraph", "svg")):
            target = self.workdir / f"profile.{suffix}"
            load = self.wrk(tulle.address, opts.duration + 3, f"profile-{suffix}")
            time.sleep(1.0)
            try:
                profile.record(tulle.proc.pid, target, seconds=opts.duration, fmt=fmt,
                               cpu=opts.load_core, native=False)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                self.problems.append(f"profile ({fmt}): {exc}")
                self.finish_wrk(load, opts.duration + 3)
                return out
            rps = parse_wrk(self.finish_wrk(load, opts.duration + 3)).rps
            out[suffix] = str(target)
            out[f"rps_while_sampling_{suffix}"] = rps
        analysed = profile.analyse(Path(out["folded"]).read_text())
        out["samples"] = analysed.samples
        out["stages"] = [[s, round(f, 4)] for s, f in analysed.stages]
        out["top_self"] = [[s, round(f, 4)] for s, f in analysed.top_self]
        return out

    def setup(self, tulle: Peer, envoy: Peer) -> dict[str, Any]:
        opts = self.opts
        return {
            "peer_core": opts.peer_core,
            "load_core": opts.load_core,
            "wrk": f"wrk -t1 -c{opts.connections} -d{opts.duration}s --latency "
                   f"(warm-up {opts.warmup} s first, not recorded)",
            "rounds": opts.rounds,
            "duration": opts.duration,
            "priority": f"each process in its own session with autogroup nice {peers.BOOST}",
            "tulle": {"argv": tulle.proc.argv, "variant": TULLE_VARIANT},
            "envoy": {"argv": envoy.proc.argv, "variant": ENVOY_VARIANT,
                      "access_log_fields": list(table.ACCESS_LOG_FORMAT)},
            "backend": "nginx, worker_processes 1, master_process off, access_log off, "
                       "return 200 (33-byte body), keepalive_requests 10M",
            "versions": versions(),
            "git": git_info(),
        }

    def table_info(self) -> dict[str, Any]:
        target = self.table.target
        return {
            "rules": len(self.table.rules),
            "routes": len({r.route for r in self.table.rules}),
            "header_rules": sum(1 for r in self.table.rules if r.header),
            "target_rule": target.name,
            "target_position": self.table.target_position,
            "request": {"path": self.path, "headers": dict(self.headers)},
            "envoy_order": [r.name for r in self.table.rules],
        }


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        print("bench-l7: needs two cores (one for the proxy, one for wrk and nginx)",
              file=sys.stderr)
        return 2
    try:
        for tool in ("wrk", "nginx", "taskset"):
            peers.find_tool(tool)
        peers.find_tool("envoy", venv=True)
    except BenchError as exc:
        print(f"bench-l7: {exc}", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {opts.load_core})  # the driver stays off the peer core

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)  # stop what we started, then exit
    workdir = Path(tempfile.mkdtemp(prefix="tulle-bench-l7-"))
    run = Run(opts, workdir)
    try:
        result = run.execute()
    except (BenchError, OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"bench-l7: failed: {exc}\n  logs kept in {workdir}", file=sys.stderr)
        run.stop_all()
        return 1
    except KeyboardInterrupt:
        run.stop_all()
        print(f"bench-l7: interrupted; logs in {workdir}", file=sys.stderr)
        return 130
    finally:
        run.stop_all()
    opts.out.mkdir(parents=True, exist_ok=True)
    base = output_base(opts.out, result.date, opts.tag)
    if result.profile:
        for suffix in ("folded", "svg"):
            source = result.profile.get(suffix)
            if source and Path(source).exists():
                target = base.parent / f"{base.name}-profile.{suffix}"
                target.write_bytes(Path(source).read_bytes())
                result.profile[suffix] = str(target.relative_to(REPO)) if target.is_relative_to(
                    REPO) else str(target)
    base.with_suffix(".json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    base.with_suffix(".md").write_text(report.markdown(result, base.name))
    print()
    print(report.console(result))
    print(f"\nresults: {base.with_suffix('.md')} and .json")
    if not opts.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work directory kept: {workdir}")
    return 0
