"""Tracing on vs off, side by side in one lab: three workloads, alternating on/off pairs.

The lab (`LAB`) and workload are bench/l4's (nginx on node2, wrk in a client pod on node1),
plus a second Service, `routed`, whose HTTPRoute sends every request through node1's
waypoint. Tracing is switched at run time on both agents and both waypoints: SIGUSR1
detaches the tracer's tracepoints (agent/tracing/start.py) and turns the waypoint's request
split off (l7proxy/node.py, l7proxy/timing.py), SIGUSR2 turns both on again; each switch
is confirmed by every process's log line before measuring. Pair orders flip (on/off,
off/on, ...) as in bench/observe/overhead.py, whose pair helpers are reused.

Each workload starts with `WARM_UPS` discarded warm-up runs (pair `WARM_UP`) as long as a
measured one, tracing on as pair 1 starts; they are reported, never in the cost. The first
pair after a 2 s warm-up was its workload's outlier (L4 new connections 0.912 and 0.906
against 0.99-1.01 in two runs): the first full-length runs of new connections on a fresh
lab went at 8-10k/s, then fell to a steady ~4.3k/s (once half that, in the run after,
bench/results/trace-2026-12-05-session7-wp.md), with tracing on and off alike. That ceiling
was the per-pod conntrack quota (``bpf/lib/quota.h``), not TIME_WAIT: it counted every
connection until the CT GC's 10 s census and dropped the client's SYNs once 32,768 were
counted; c038318 fixed it, and since then the workload runs CPU-bound at ~11-14k/s
(bench/results/trace-2026-12-07-l4new.md). The warm-ups stay: the second run after a
fresh start was steady in every run seen.

Beside req/s, each run records the CPU seconds of node1's waypoint process; its CPU per
request, on ÷ off per pair, is the split's cost to the waypoint whatever else the machine
runs (the pair's req/s ratio moves with the other sessions' load: 0.89-1.05 in one quiet
run, trace-2026-12-06-session13.md). ``pin`` (``--pin``) runs the client's wrk on CPU 0
and node1's waypoint on CPU 1 (``taskset``, ``sched_setaffinity`` by its pid), so the load
generator and the measured process never share a core; the other lab processes float.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bpfprogs import bpf_stats, stats_sysctl
from bench.l4 import machine, manifests
from bench.l4.labs import BenchError, BenchLab, Progress
from bench.l4.runner import BenchConfig, Runner
from bench.l4.wrk import WrkOutputError, WrkResult, parse_wrk, wrk_argv
from bench.observe.overhead import cost_interval, median_cost, pair_orders, pair_ratios
from bench.trace.attribute import Attributor
from bench.trace.attribution import Sample
from lab import components
from lab.state import LabPaths

LAB = "benchtrace"
NODES = ("node1", "node2")
ROUTED_VIP = "10.96.200.11"
# What each switched process logs: (its log file's prefix, paused line, resumed line).
SWITCHED = (("agent", "kernel tracing paused", "kernel tracing resumed"),
            ("waypoint", "request split paused", "request split resumed"))
TARGET_URL = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"
ROUTED_URL = f"http://{ROUTED_VIP}:{manifests.SERVICE_PORT}/"
WARM_UP = -1  # a TraceRun's pair: one of the workload's discarded warm-up runs
WARM_UPS = 2
WAYPOINT = "waypoint-node1"  # the lab process the waypoint workload goes through
WRK_CPU, WAYPOINT_CPU = 0, 1  # ``pin``: the load generator and the measured waypoint
# name -> (what, url, Connection: close)
WORKLOADS: dict[str, tuple[str, str, bool]] = {
    "l4_new_conn": ("L4 new connections/s through a ClusterIP", TARGET_URL, True),
    "l4_keepalive": ("keep-alive requests/s through a ClusterIP", TARGET_URL, False),
    "waypoint": ("waypoint requests/s (Service with an HTTPRoute)", ROUTED_URL, False),
}


def routed_objects() -> list[dict[str, Any]]:
    """Service `routed` (same backend as `target`) and an HTTPRoute on it to `target`."""
    ns, port = manifests.NAMESPACE, manifests.SERVICE_PORT
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "routed", "namespace": ns},
           "spec": {"clusterIP": ROUTED_VIP, "selector": {"app": "backend"},
                    "ports": [{"name": "http", "port": port,
                               "targetPort": manifests.BACKEND_PORT, "protocol": "TCP"}]}}
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "routed", "namespace": ns},
             "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "routed",
                                      "port": port}],
                      "rules": [{"backendRefs": [{"name": "target", "port": port}]}]}}
    return [svc, route]


def check_tracing(lab: BenchLab) -> None:
    for node in NODES:
        hooks = (lab.health(node).get("tracing") or {}).get("hooks") or []
        if not hooks:
            raise BenchError(f"agent on {node} runs without kernel tracing: nothing to "
                             "compare (health file has no tracing hooks)")


def bring_up(lab: BenchLab, runner: Runner) -> None:
    """The lab up with both Services answering (`target`, and `routed` through node1's
    waypoint) and both agents tracing; shared with bench/tracecost.py."""
    lab.up()
    runner.deploy(lab)
    lab.apply([manifests.target_service(), *routed_objects()])
    runner.wait_answering(lab, TARGET_URL, "the target ClusterIP")
    runner.wait_answering(lab, ROUTED_URL, "the routed Service (waypoint)")
    check_tracing(lab)


@dataclass(frozen=True)
class TraceRun:
    workload: str
    pair: int
    events: bool  # tracing on (the name bench/observe's pair_ratios reads)
    result: WrkResult
    load1: float
    lab_cores: float
    waypoint_cpu_s: float = 0.0  # node1's waypoint process, user + system, over the run
    control: bool = False  # --control: run with tracing off whatever `events` labels it

    @property
    def waypoint_us_per_request(self) -> float | None:
        """The waypoint's CPU µs per request wrk counted (None: no requests or no CPU)."""
        if self.result.requests <= 0 or self.waypoint_cpu_s <= 0:
            return None
        return self.waypoint_cpu_s * 1e6 / self.result.requests

    def to_json(self) -> dict[str, Any]:
        per = self.waypoint_us_per_request
        return {"workload": self.workload, "pair": self.pair,
                "tracing": _label(self.events, self.control), **self.result.to_json(),
                "load1": self.load1, "lab_cores": self.lab_cores,
                "waypoint_cpu_s": round(self.waypoint_cpu_s, 4),
                "waypoint_us_per_request": None if per is None else round(per, 2)}


def _label(on: bool, control: bool) -> str:
    """A run's tracing column: in a control, both runs of a pair are off; ``A`` takes the
    place of on in the pair's order, ``B`` of off."""
    if control:
        return "off (A)" if on else "off (B)"
    return "on" if on else "off"


def cpu_pair_ratios(runs: list[TraceRun]) -> list[float]:
    """The waypoint's CPU per request, on ÷ off, per pair that has both with a figure."""
    out = []
    for pair in sorted({r.pair for r in runs}):
        on = [r.waypoint_us_per_request for r in runs if r.pair == pair and r.events]
        off = [r.waypoint_us_per_request for r in runs if r.pair == pair and not r.events]
        if on and off and on[0] is not None and off[0] is not None:
            out.append(on[0] / off[0])
    return out


def summary(runs: list[TraceRun], workload: str) -> dict[str, Any]:
    """The workload's on/off pairs (warm-up runs left out) and their median cost."""
    mine = [r for r in runs if r.workload == workload and r.pair != WARM_UP]
    ratios = pair_ratios(mine)  # type: ignore[arg-type]  # same fields as OverheadRun
    cost = median_cost(ratios)
    cpu = cpu_pair_ratios(mine)
    return {"pair_ratios": [round(x, 4) for x in ratios],
            "median_ratio": round(1 - cost / 100, 4) if cost is not None else None,
            "median_cost_pct": round(cost, 2) if cost is not None else None,
            # where the median cost lies, 95% (sign test; None: too few pairs to say)
            "cost_interval_pct": ([round(x, 2) for x in interval]
                                  if (interval := cost_interval(ratios)) else None),
            # the waypoint's CPU per request: + is what tracing costs it (a cost, not a rate)
            "cpu_pair_ratios": [round(x, 4) for x in cpu],
            "median_cpu_cost_pct": (round(100 * (statistics.median(cpu) - 1), 2)
                                    if cpu else None)}


@dataclass
class TraceBench:
    seconds: int
    pairs: int
    progress: Progress
    threads: int = 2
    connections: int = 32
    runs: list[TraceRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tracing: bool = True  # the agents' state as last confirmed
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    pin: bool = False  # wrk on WRK_CPU, the waypoint on WAYPOINT_CPU (module docstring)
    attribute: bool = False  # per-program and per-syscall readings (bench/trace/attribute.py)
    samples: list[Sample] = field(default_factory=list)  # ``attribute``: one per measured run
    attributor: Attributor | None = None
    # An A/A control: every run with tracing off, the pairs' A/B order as on/off's, so their
    # "cost" is the machine's noise alone: what a real run of as many pairs can resolve.
    control: bool = False

    def run(self) -> None:
        lab = BenchLab(LAB, True, self.progress)
        runner = Runner(BenchConfig(seconds=self.seconds, threads=self.threads,
                                    connections=self.connections), self.progress)
        stack = ExitStack()
        try:
            bring_up(lab, runner)
            if self.pin:
                self.pin_waypoint(lab)
            if self.attribute:
                self.start_attribution(lab, stack)
            for name in self.workloads:
                for _ in range(WARM_UPS):
                    self.runs.append(self.measure(lab, runner, name, WARM_UP, True))
                for pair, order in enumerate(pair_orders(self.pairs)):
                    for on in order:
                        self.runs.append(self.measure(lab, runner, name, pair, on))
            self.notes.extend(runner.notes)
        finally:
            stack.close()  # the syscall counter unloaded, BPF stats off
            if self.attribute:
                self.notes.append(f"kernel.bpf_stats_enabled after the run: {stats_sysctl()}")
            try:
                self.switch(lab, True)
            except BenchError:
                pass  # the lab never came up far enough
            lab.down()
            shutil.rmtree(Path(tempfile.gettempdir()) / LAB, ignore_errors=True)

    def log(self, process: str) -> str:
        path = LabPaths.for_lab(LAB).logs / f"{process}.log"
        return path.read_text(errors="replace")

    def switch(self, lab: BenchLab, on: bool, timeout: float = 5.0) -> None:
        """Tracing on/off on every agent and waypoint; returns once each logged it."""
        if on == self.tracing:
            return  # both log only real switches; both start with tracing on
        pids = lab.process_pids()
        lines = {f"{kind}-{node}": resumed if on else paused
                 for kind, paused, resumed in SWITCHED for node in NODES}
        before = {p: self.log(p).count(line) for p, line in lines.items()}
        for process in lines:
            pid = pids.get(process)
            if pid is None:
                raise BenchError(f"{process} is not running")
            os.kill(pid, signal.SIGUSR2 if on else signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.log(p).count(line) > before[p] for p, line in lines.items()):
                self.tracing = on
                return
            time.sleep(0.1)
        missing = [p for p, line in lines.items() if self.log(p).count(line) <= before[p]]
        raise BenchError(f"{', '.join(missing)} did not log the switch "
                         f"({'on' if on else 'off'}) within {timeout:.0f} s")

    def pin_waypoint(self, lab: BenchLab) -> None:
        """Node1's waypoint on WAYPOINT_CPU for the rest of the run (the lab's own process:
        it goes with ``lab.down``)."""
        if (os.cpu_count() or 1) <= WAYPOINT_CPU:
            raise BenchError(f"--pin needs {WAYPOINT_CPU + 1} CPUs; this machine has "
                             f"{os.cpu_count()}")
        pid = lab.process_pids().get(WAYPOINT)
        if pid is None:
            raise BenchError(f"{WAYPOINT} is not running: nothing to pin")
        os.sched_setaffinity(pid, {WAYPOINT_CPU})
        self.notes.append(f"pinned: wrk on CPU {WRK_CPU}, {WAYPOINT} (pid {pid}) on CPU "
                          f"{WAYPOINT_CPU}; the other lab processes float")

    def start_attribution(self, lab: BenchLab, stack: ExitStack) -> None:
        """BPF stats on until `stack` closes, and an `Attributor` for the measured runs."""
        pids = lab.process_pids()
        roles = [components.role("agent", n) for n in NODES]
        agents = [pids[r] for r in roles if r in pids]
        if len(agents) != len(NODES) or WAYPOINT not in pids:
            raise BenchError(f"--attribute: needs both agents and {WAYPOINT} running "
                             f"(running: {', '.join(sorted(pids))})")
        before = stats_sysctl()
        stack.enter_context(bpf_stats())
        self.attributor = Attributor(agents, pids[WAYPOINT])
        stack.callback(self.attributor.close)
        self.notes.append(f"--attribute: kernel.bpf_stats_enabled {before} before the run, "
                          f"{stats_sysctl()} during it (BPF_ENABLE_STATS fd)")

    def wrk(self, lab: BenchLab, runner: Runner, url: str, close: bool) -> WrkResult:
        if not self.pin:
            result: WrkResult = runner.wrk(lab, url, self.seconds, close=close)
            return result
        argv = ["taskset", "-c", str(WRK_CPU),
                *wrk_argv(url, threads=self.threads, connections=self.connections,
                          seconds=self.seconds, close=close)]
        proc = runner.client_exec(lab, *argv, external=False, timeout=self.seconds + 60,
                                  check=False)
        try:
            return parse_wrk(proc.stdout)
        except WrkOutputError as err:
            raise BenchError(f"lab {lab.name}: pinned wrk against {url} failed "
                             f"({proc.returncode}): {err}\n{proc.stderr.strip()[-400:]}") from err

    def measure(self, lab: BenchLab, runner: Runner, workload: str, pair: int,
                on: bool) -> TraceRun:
        self.switch(lab, on and not self.control)
        runner.settle(lab)
        load1 = machine.loadavg()[0]
        before = lab.lab_cpu()
        _what, url, close = WORKLOADS[workload]
        attributor = self.attributor if pair != WARM_UP else None
        if attributor is not None:
            attributor.begin()
        result = self.wrk(lab, runner, url, close)
        after = lab.lab_cpu()
        if attributor is not None:
            self.samples.append(attributor.end(on, result.requests, {
                k: after[k] - v for k, v in before.items() if k in after}))
        cores = sum(after.get(k, 0.0) - v for k, v in before.items()) / max(result.seconds, 1e-9)
        waypoint = after.get(WAYPOINT, 0.0) - before.get(WAYPOINT, 0.0)
        label = "warm-up" if pair == WARM_UP else f"pair {pair + 1}"
        self.progress(f"  {workload:<12} {label} tracing {_label(on, self.control):<3}: "
                      f"{result.rps:>9,.0f}/s  p99 {result.p99_ms:.2f} ms  "
                      f"errors {result.errors}  lab procs {cores:.2f} cores  load {load1:.1f}  "
                      f"waypoint {waypoint * 1e6 / max(result.requests, 1):.1f} µs/req")
        return TraceRun(workload, pair, on, result, load1, round(cores, 2), waypoint,
                        self.control)
