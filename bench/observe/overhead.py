"""Datapath overhead: the L4 new-connection rate with flow events on and off, in one lab.

The lab (`LAB`) is bench/l4's: nginx on node2, an idle client pod on node1, wrk with
`Connection: close` from the client to the target Service's ClusterIP (its helpers are
imported, not copied). Flow events are switched on both nodes through the runtime config map
pinned at ``/sys/fs/bpf/tulle/<lab>/<node>/tulle_config_v1``, key
``TULLE_CFG_FLOW_EVENTS_OFF`` from bpf/lib/common.h, written through libbpf (`pinned`). On and
off alternate in pairs whose order flips every pair (on/off, off/on, ...), so slow drifts in
the machine's other load do not favour one side; the figure is the median of the pairs'
on/off ratios.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.l4 import machine, manifests
from bench.l4.labs import BenchError, BenchLab, Progress
from bench.l4.runner import BenchConfig, Runner
from bench.l4.wrk import WrkResult
from bench.observe import pinned
from lab import components
from lab.state import LabPaths, pin_dir

LAB = "benchobs"
NODES = ("node1", "node2")
CFG_FLOW_EVENTS_OFF = pinned.CFG_FLOW_EVENTS_OFF


def set_flow_events(lab: str, on: bool) -> None:
    """Flow events on or off in every node's datapath (read back after the write)."""
    for node in NODES:
        pinned.write_u64(pin_dir(lab, node) / "tulle_config_v1", CFG_FLOW_EVENTS_OFF,
                         0 if on else 1)


def events_lost(lab: str) -> int:
    return sum(pinned.percpu_sum(pin_dir(lab, node) / "events_lost_v1") for node in NODES)


def context_switches(pids: list[int]) -> int:
    """Voluntary context switches (sleeps, i.e. wake-ups) of every thread of `pids`."""
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                for line in (task / "status").read_text().splitlines():
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
            except OSError:
                continue  # the thread ended meanwhile
    return total


def pair_orders(pairs: int) -> list[tuple[bool, bool]]:
    """(first, second) flow-event states per pair: on/off, off/on, on/off, ..."""
    return [(True, False) if i % 2 == 0 else (False, True) for i in range(pairs)]


def pair_ratios(runs: list[OverheadRun]) -> list[float]:
    """new conn/s with events on ÷ off, per pair (pairs missing a side are skipped)."""
    out = []
    for pair in sorted({r.pair for r in runs}):
        on = [r.result.rps for r in runs if r.pair == pair and r.events]
        off = [r.result.rps for r in runs if r.pair == pair and not r.events]
        if on and off and off[0] > 0:
            out.append(on[0] / off[0])
    return out


def median_cost(ratios: list[float]) -> float | None:
    """The cost of flow events in %: 100 × (1 − median on/off ratio)."""
    return 100.0 * (1.0 - statistics.median(ratios)) if ratios else None


def median_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free confidence interval for the median of ``values`` (the sign test's:
    order statistics k and n+1-k, with k the largest whose binomial coverage,
    1 - 2 P(Binom(n, 1/2) < k), is at least ``confidence``). None when even the full range
    covers less (fewer than 6 values at 95%): more pairs are needed to place the median."""
    xs, n = sorted(values), len(values)
    below, k = 0.0, 0  # P(Binom(n, 1/2) < k), accumulated as k grows
    while k < n // 2:
        below_next = below + math.comb(n, k) / 2**n
        if 1 - 2 * below_next < confidence:
            break
        below, k = below_next, k + 1
    return (xs[k - 1], xs[n - k]) if k else None


def cost_interval(ratios: list[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """``median_cost``'s interval in % (low, high), from ``median_interval`` of the ratios."""
    got = median_interval(ratios, confidence)
    return None if got is None else (100.0 * (1.0 - got[1]), 100.0 * (1.0 - got[0]))


@dataclass(frozen=True)
class OverheadRun:
    pair: int
    events: bool
    result: WrkResult
    load1: float
    lab_cores: float  # the lab's own processes (agents, controller, DNS, relay) meanwhile
    lab_roles: dict[str, float]
    lost: int  # events_lost_v1 over both nodes during the run
    flows_seen: int | None  # flows the relay saw during the run (None: a node did not answer)
    wakeups_per_s: float  # voluntary context switches of the lab's processes per second
    agent_pids: dict[str, int] = field(default_factory=dict)

    @property
    def flows_per_conn(self) -> float | None:
        if self.flows_seen is None or not self.result.requests:
            return None
        return self.flows_seen / self.result.requests

    def to_json(self) -> dict[str, Any]:
        return {"pair": self.pair, "flow_events": "on" if self.events else "off",
                **self.result.to_json(), "load1": self.load1, "lab_cores": self.lab_cores,
                "lab_roles": self.lab_roles, "events_lost": self.lost,
                "flows_seen": self.flows_seen, "lab_wakeups_per_s": round(self.wakeups_per_s),
                "flows_per_connection": (round(f, 2) if (f := self.flows_per_conn) is not None
                                         else None),
                "agent_pids": self.agent_pids}


@dataclass
class OverheadBench:
    seconds: int
    pairs: int
    progress: Progress
    threads: int = 2
    connections: int = 32
    warmup_seconds: int = 2
    runs: list[OverheadRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    url: str = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"

    def run(self) -> None:
        lab = BenchLab(LAB, True, self.progress)
        runner = Runner(BenchConfig(seconds=self.seconds, threads=self.threads,
                                    connections=self.connections), self.progress)
        try:
            lab.up()
            runner.deploy(lab)
            lab.apply([manifests.target_service()])
            runner.wait_answering(lab, self.url, "the target ClusterIP")
            set_flow_events(LAB, True)
            if self.warmup_seconds:
                runner.wrk(lab, self.url, self.warmup_seconds, close=True)
            for pair, order in enumerate(pair_orders(self.pairs)):
                for on in order:
                    self.runs.append(self.measure(lab, runner, pair, on))
            self.check(lab)
        finally:
            try:
                set_flow_events(LAB, True)
            except OSError:
                pass  # the lab never came up far enough to pin its maps
            lab.down()
            # bench/l4's deploy() keeps nginx's config and logs here
            shutil.rmtree(Path(tempfile.gettempdir()) / LAB, ignore_errors=True)

    def check(self, lab: BenchLab) -> None:
        """Notes on anything that makes the on runs not what they claim: agents restarted,
        errors in their logs, or on runs whose flows per connection fall far below the
        others' (events not emitted or not ingested)."""
        pids = {tuple(sorted(r.agent_pids.items())) for r in self.runs}
        if len(pids) > 1:
            self.notes.append(f"The lab's agents changed pids during the runs: {sorted(pids)}")
        paths = LabPaths.for_lab(lab.name)
        for node in NODES:
            log = components.component_log(paths, "agent", node)
            try:
                lines = log.read_text(errors="replace").splitlines()
            except OSError:
                continue
            bad = [x for x in lines if "Traceback" in x or " ERROR " in x]
            if bad:
                self.notes.append(f"agent-{node}.log has {len(bad)} error lines, first: "
                                  f"{bad[0][:200]}")
        per_conn = [f for r in self.runs if r.events and (f := r.flows_per_conn) is not None]
        if per_conn:
            typical = statistics.median(per_conn)
            for r in self.runs:
                f = r.flows_per_conn
                if r.events and f is not None and f < 0.5 * typical:
                    self.notes.append(
                        f"pair {r.pair + 1}, events on: {f:.2f} flows per connection against "
                        f"{typical:.2f} in the other on runs, with {r.lost} events lost: "
                        "events were not all emitted or not all ingested in that run.")

    def seen_flows(self, lab: BenchLab) -> int | None:
        """Flows both nodes' agents ever stored, per the relay; None unless both answered
        (the relay sums the nodes it reaches, so a missing one would skew a difference)."""
        try:
            proc = lab.tulle("status", "-o", "json", timeout=30, check=False)
            status = json.loads(proc.stdout) if proc.returncode == 0 else {}
            if status.get("num_connected_nodes") != len(NODES):
                return None
            return int(status["seen_flows"])
        except (BenchError, ValueError, KeyError):
            return None

    def measure(self, lab: BenchLab, runner: Runner, pair: int, on: bool) -> OverheadRun:
        set_flow_events(LAB, on)
        runner.settle(lab)
        seen0, lost0 = self.seen_flows(lab), events_lost(LAB)
        load1 = machine.loadavg()[0]
        procs = lab.process_pids()
        pids = list(procs.values())
        before, switches = lab.lab_cpu(), context_switches(pids)
        result = runner.wrk(lab, self.url, self.seconds, close=True)
        after, switches = lab.lab_cpu(), context_switches(pids) - switches
        lost = events_lost(LAB) - lost0
        seen1 = self.seen_flows(lab)
        roles = {k: round((after.get(k, 0.0) - v) / result.seconds, 2) for k, v in before.items()}
        run = OverheadRun(
            pair=pair, events=on, result=result, load1=load1,
            lab_cores=round(sum(roles.values()), 2), lab_roles=roles, lost=lost,
            flows_seen=seen1 - seen0 if seen0 is not None and seen1 is not None else None,
            wakeups_per_s=switches / result.seconds if result.seconds else 0.0,
            agent_pids={k: v for k, v in procs.items() if k.startswith("agent")},
        )
        p99 = f"{result.p99_ms:.2f}" if result.p99_ms is not None else "?"
        self.progress(f"  pair {pair + 1} events {'on ' if on else 'off'}: "
                      f"{result.rps:>8,.0f} new conn/s  p99 {p99} ms  errors {result.errors}  "
                      f"lab procs {run.lab_cores:.2f} cores, {run.wakeups_per_s:,.0f} wake-ups/s  "
                      f"flows seen {run.flows_seen}  "
                      f"lost {lost}  load {load1:.1f}")
        return run

    def ratios(self) -> list[float]:
        return pair_ratios(self.runs)
