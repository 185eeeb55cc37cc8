"""What kernel tracing costs per event and per request, from the kernel's own counters.

    sudo PYTHONPATH=$PWD .venv/bin/python -m bench.tracecost [--seconds 5] [--rounds 2]
        [--workload keepalive|close|waypoint] [--out FILE.json]
    sudo PYTHONPATH=$PWD .venv/bin/python -m bench.tracecost --probe-ab 200000   # no lab

Brings up bench-trace's 2-node lab (bench/trace/overhead.py's bring_up, as `LAB`: nginx on
node2, wrk in a client pod on node1), then runs wrk through the `target` ClusterIP
keep-alive (``keepalive``) or one connection per request (``close``), or keep-alive
through the `routed` Service whose HTTPRoute goes through node1's waypoint (``waypoint``),
in rounds of tracing on, then off (SIGUSR1/SIGUSR2 to both agents, each switch
confirmed in the agent's log; the waypoints' request split stays on). With tracing on it
reads every tracer program's ``run_time_ns``/``run_cnt`` from the agents' ``/proc/PID/fdinfo``
(kernel BPF run-time stats, switched on through ``BPF_ENABLE_STATS``: an fd the kernel drops
when this process ends, so stats go back off even if it is killed), its name and size from
BPF_OBJ_GET_INFO_BY_FD, and prints, per program, ns per event and events per request. For
both states it prints the agents' CPU time (user + system) and voluntary context switches
(wake-ups) per 100k requests; ``--out`` also writes the rounds as JSON. Bounded:
rounds × 2 × (seconds + settle); the lab is removed at the end, also on failure.

run_time_ns counts the program body only: the tracepoint's dispatch (and for a classic
tracepoint the record fill) is on top, and the stats themselves add two clock reads a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bpfprogs import bpf_stats, prog_info, tracer_programs
from bench.l4 import machine
from bench.l4.labs import BenchError, BenchLab, cpu_seconds
from bench.l4.runner import BenchConfig, Runner
from bench.l4.wrk import WrkResult
from bench.observe.overhead import context_switches
from bench.trace.overhead import ROUTED_URL, TARGET_URL, bring_up
from bench.tracecost_stats import ProgCost, ProgStats, costs, parse_fdinfo, round_json
from lab import components
from lab.state import LabPaths

LAB = "benchtcost"
NODES = ("node1", "node2")
# name -> (url, Connection: close)
WORKLOADS: dict[str, tuple[str, bool]] = {
    "keepalive": (TARGET_URL, False), "close": (TARGET_URL, True), "waypoint": (ROUTED_URL, False)}
_t0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[tracecost {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


# -- the run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Round:
    workload: str
    tracing: bool
    wrk: WrkResult
    agent_cpu_s: float
    agent_wakeups: int
    progs: list[ProgCost]

    def per_100k(self, value: float) -> float:
        return value * 100_000 / max(self.wrk.requests, 1)


def switch(lab: BenchLab, on: bool, timeout: float = 10.0) -> None:
    """Tracing on/off in both agents; returns once each logged the switch."""
    line = "kernel tracing resumed" if on else "kernel tracing paused"
    logs = {n: components.component_log(LabPaths.for_lab(LAB), "agent", n) for n in NODES}
    seen = {n: p.read_text(errors="replace").count(line) for n, p in logs.items()}
    pids = lab.process_pids()
    for node in NODES:
        os.kill(pids[components.role("agent", node)], signal.SIGUSR2 if on else signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.read_text(errors="replace").count(line) > seen[n] for n, p in logs.items()):
            return
        time.sleep(0.1)
    raise BenchError(f"the agents did not log '{line}' within {timeout:.0f} s")


def measure(lab: BenchLab, runner: Runner, on: bool, seconds: int, workload: str) -> Round:
    url, close = WORKLOADS[workload]
    agents = [lab.process_pids()[components.role("agent", n)] for n in NODES]
    runner.settle(lab)
    before = tracer_programs(agents) if on else {}
    cpu0, wake0 = sum(cpu_seconds(p) for p in agents), context_switches(agents)
    result = runner.wrk(lab, url, seconds, close=close)
    cpu1, wake1 = sum(cpu_seconds(p) for p in agents), context_switches(agents)
    progs: list[ProgCost] = []
    if on:
        after = tracer_programs(agents)
        progs = costs({i: prog_info(i) for i in after}, before, after, result.requests)
    return Round(workload, on, result, cpu1 - cpu0, wake1 - wake0, progs)


def report(rounds: list[Round]) -> None:
    print(f"\n{'tracing':8} {'req/s':>9} {'requests':>10} {'agent CPU ms/100k':>18} "
          f"{'agent wake-ups/100k':>20} {'p99 ms':>7}")
    for r in rounds:
        print(f"{'on' if r.tracing else 'off':8} {r.wrk.rps:9,.0f} {r.wrk.requests:10,} "
              f"{r.per_100k(r.agent_cpu_s) * 1000:18.1f} {r.per_100k(r.agent_wakeups):20.1f} "
              f"{r.wrk.p99_ms:7.2f}")
    for r in (r for r in rounds if r.tracing):
        print(f"\n{r.workload}, tracing on, {r.wrk.requests:,} requests:")
        print(f"  {'program':18} {'insns':>5} {'copies':>6} {'events':>11} {'ns/event':>9} "
              f"{'events/req':>11} {'ns/req':>8}")
        for p in r.progs:
            print(f"  {p.name:18} {p.insns:5} {p.copies:6} {p.events:11,} {p.ns_per_event:9.1f} "
                  f"{p.events_per_request:11.3f} {p.ns_per_request:8.1f}")
        print(f"  {'total':18} {'':5} {'':6} {sum(p.events for p in r.progs):11,} {'':9} "
              f"{sum(p.events_per_request for p in r.progs):11.3f} "
              f"{sum(p.ns_per_request for p in r.progs):8.1f}")


# -- tcp_probe alone, side by side ----------------------------------------------------------
EMPTY_PROBE = "RAW_TRACEPOINT_PROBE(tcp_probe) { return 0; }"


def _prog_fd_stats(fd: int) -> ProgStats:
    stats = parse_fdinfo(Path(f"/proc/self/fdinfo/{fd}").read_text())
    if stats is None:
        raise BenchError(f"fd {fd} is not a BPF program with run-time stats")
    return stats


def probe_ab(segments: int) -> None:
    """Three tcp_probe programs on the same segments at the same time: an empty one (the
    floor: dispatch and the stats' own clock reads), the tracer taking every segment (the
    old behaviour) and the tracer as shipped (1 in 16), for a socket the tracer does not
    trace and for one it does. Loopback in a private namespace (removed after)."""
    import subprocess

    from bcc import BPF

    from agent.datapath.features import feature_probe
    from agent.tracing.tracer import Tracer, plan_hooks
    from bench.trace.probe_cost import ADDR, NS, cpu_seconds

    subprocess.run(["ip", "netns", "add", NS], check=True)
    loaded: list[Tracer] = []
    empty = None
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", NS, "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
        plan = plan_hooks(feature_probe())
        with bpf_stats():
            empty = BPF(text=EMPTY_PROBE)
            progs = {"empty": empty.funcs[b"raw_tracepoint__tcp_probe"].fd}
            for label, sample in (("every segment (before)", 1), ("1 in 16 (after)", None)):
                loaded.append(Tracer.load(plan, probe_sample=sample))
                progs[label] = loaded[-1].bpf.funcs[b"raw_tracepoint__tcp_probe"].fd
            for traced in (False, True):
                for t in loaded:
                    t.set_local([ADDR] if traced else [])
                before = {k: _prog_fd_stats(fd) for k, fd in progs.items()}
                cpu_seconds(segments)
                after = {k: _prog_fd_stats(fd) for k, fd in progs.items()}
                which = "traced" if traced else "not traced"
                print(f"\n{segments:,} segments sent, socket {which}:")
                for label in progs:
                    runs = after[label].run_cnt - before[label].run_cnt
                    ns = after[label].run_time_ns - before[label].run_time_ns
                    print(f"  tcp_probe {label:24} {runs:9,} runs {ns / max(runs, 1):7.1f} ns/run")
    finally:
        for t in loaded:
            t.close()
        if empty is not None:
            empty.cleanup()
        subprocess.run(["ip", "netns", "del", NS], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tracecost", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--rounds", type=int, default=2, help="on/off rounds (default 2)")
    p.add_argument("--workload", choices=WORKLOADS, default="keepalive",
                   help="keepalive (default) or close through the target ClusterIP, or "
                        "waypoint: keep-alive through the routed Service's waypoint")
    p.add_argument("--close", action="store_true", help="same as --workload close")
    p.add_argument("--out", type=Path, help="also write the rounds as JSON here")
    p.add_argument("--probe-ab", type=int, metavar="SEGMENTS",
                   help="no lab: tcp_probe empty / every segment / sampled, side by side")
    args = p.parse_args(argv)
    workload = "close" if args.close else args.workload
    if os.geteuid() != 0:
        print("tracecost: needs root (lab namespaces, BPF)", file=sys.stderr)
        return 2
    if args.probe_ab:
        probe_ab(args.probe_ab)
        return 0
    if missing := machine.missing_tools():
        print(f"tracecost: missing tools: {', '.join(missing)} (make setup)", file=sys.stderr)
        return 2
    lab = BenchLab(LAB, True, progress)
    runner = Runner(BenchConfig(seconds=args.seconds), progress)
    rounds: list[Round] = []
    try:
        bring_up(lab, runner)
        url, close = WORKLOADS[workload]
        runner.wrk(lab, url, 2, close=close)  # warm-up
        with bpf_stats():
            for _ in range(args.rounds):
                for on in (True, False):
                    if on != (not rounds or rounds[-1].tracing):  # the agents start on
                        switch(lab, on)
                    rounds.append(measure(lab, runner, on, args.seconds, workload))
                    progress(f"tracing {'on ' if on else 'off'}: {rounds[-1].wrk.rps:,.0f} req/s")
    except BenchError as err:
        progress(f"FAILED: {err}")
        return 1
    finally:
        lab.down()
        shutil.rmtree(Path(tempfile.gettempdir()) / LAB, ignore_errors=True)
    progress(f"load average {machine.loadavg()}")
    report(rounds)
    if args.out is not None:
        args.out.write_text(json.dumps([round_json(
            r.workload, r.tracing, r.wrk.requests, r.wrk.rps, r.agent_cpu_s, r.agent_wakeups,
            r.progs) for r in rounds], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
