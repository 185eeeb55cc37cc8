"""Measuring one URL from inside a lab: reachability probes and wrk runs with their noise
accounting. The client is the lab's client pod (ClusterIP, pod IP) or the lab's external
client (NodePort: a machine outside the cluster)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from bench.l4 import machine
from bench.l4.config import BenchConfig
from bench.l4.labs import BenchError, BenchLab, Progress
from bench.l4.results import (
    CLEAN_CORES,
    CLOSE,
    KEEPALIVE,
    PATH_TITLES,
    Measurement,
    Run,
)
from bench.l4.results import services as n_services
from bench.l4.wrk import WrkOutputError, parse_wrk, wrk_argv

CLIENT_POD = "client"


@dataclass
class Meter:
    config: BenchConfig
    progress: Progress
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labs: list[BenchLab] = field(default_factory=list)
    noise_spent: float = 0.0  # seconds spent waiting out other load and re-running

    def client_exec(self, lab: BenchLab, *argv: str, external: bool, timeout: float,
                    check: bool) -> subprocess.CompletedProcess[str]:
        if external:
            return lab.exec_external(*argv, timeout=timeout, check=check)
        return lab.exec(CLIENT_POD, *argv, timeout=timeout, check=check)

    def http_code(self, lab: BenchLab, url: str, *, external: bool = False) -> str:
        proc = self.client_exec(lab, "curl", "-s", "-m", "1", "-o", "/dev/null", "-w",
                                "%{http_code}", url, external=external, timeout=20, check=False)
        return proc.stdout.strip()

    def wait_answering(self, lab: BenchLab, url: str, what: str, timeout: float = 60, *,
                       external: bool = False) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.http_code(lab, url, external=external) == "200":
                return time.monotonic() - started
            time.sleep(0.2)
        client = "the external client" if external else "the client pod"
        raise BenchError(f"lab {lab.name}: {what} ({url}) did not answer 200 from {client} "
                         f"within {timeout:.0f}s")

    def wait_silent(self, lab: BenchLab, url: str, timeout: float = 60) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.http_code(lab, url) != "200":
                return
            time.sleep(0.2)
        raise BenchError(f"lab {lab.name}: {url} still answers {timeout:.0f}s after its Service "
                         "was deleted")

    def settle(self, lab: BenchLab) -> None:
        waited = lab.wait_idle()
        if waited is None:
            note = (f"lab {lab.name}: its processes never went quiet before a measurement "
                    "(they kept using over 0.15 core)")
            self.notes.append(note)
            self.progress(note)

    def measure(self, lab: BenchLab, path: str, services: int | None, url: str, *,
                external: bool = False) -> None:
        cfg = self.config
        where = PATH_TITLES[path] + (f", {n_services(services)}" if services else "")
        self.progress(f"measuring {where}: {url}")
        self.settle(lab)
        self.wait_answering(lab, url, where, external=external)
        if cfg.warmup_seconds:
            self.wrk(lab, url, cfg.warmup_seconds, close=True, external=external)
        modes = {CLOSE: Measurement(path, services, CLOSE, url),
                 KEEPALIVE: Measurement(path, services, KEEPALIVE, url)}
        for _ in range(cfg.repeats):
            for m in modes.values():
                self.run_once(lab, m, external=external)
        for m in modes.values():
            extra = 0
            while not any(r.clean for r in m.runs) and extra < cfg.extra_runs:
                started = time.monotonic()
                if self.noise_spent >= cfg.noise_budget:
                    break
                self.progress(f"  no clean {m.mode} run (others took >= {CLEAN_CORES} cores): "
                              "waiting for quiet and running again")
                self.wait_quiet(min(cfg.quiet_wait, cfg.noise_budget - self.noise_spent))
                self.run_once(lab, m, external=external)
                extra += 1
                self.noise_spent += time.monotonic() - started
        self.measurements += modes.values()

    def run_once(self, lab: BenchLab, m: Measurement, *, external: bool = False) -> None:
        load1 = machine.loadavg()[0]
        others = self.other_load()
        before = lab.lab_cpu()
        result = self.wrk(lab, m.url, self.config.seconds, close=m.mode == CLOSE,
                          external=external)
        after = lab.lab_cpu()
        others_cores = others.cores()
        roles = {k: round((after.get(k, 0.0) - v) / result.seconds, 2) for k, v in before.items()}
        lab_cores = round(sum(roles.values()), 2)
        run = Run(result, load1, lab_cores, roles, others_cores)
        m.runs.append(run)
        label = "new conn/s " if m.mode == CLOSE else "keep-alive req/s"
        p99 = f"{result.p99_ms:.2f}" if result.p99_ms is not None else "?"
        self.progress(f"  {label} run {len(m.runs)}: {result.rps:>10,.0f}  p99 {p99} ms  "
                      f"errors {result.errors}  lab procs {lab_cores:.2f} cores  "
                      f"others {others_cores:.2f} cores" + ("" if run.clean else " (disturbed)"))

    def wait_quiet(self, limit: float, sample: float = 2.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            load = self.other_load()
            time.sleep(sample)
            if load.cores() < CLEAN_CORES / 2:
                return

    def other_load(self) -> machine.OtherLoad:
        netns: set[int] = set()
        pids: set[int] = set()
        for lab in self.labs:
            netns |= lab.netns_inodes()
            pids |= set(lab.process_pids().values())
        load = machine.OtherLoad(netns, pids)
        load.start()
        return load

    def wrk(self, lab: BenchLab, url: str, seconds: int, *, close: bool,
            external: bool = False) -> Any:
        cfg = self.config
        argv = wrk_argv(url, threads=cfg.threads, connections=cfg.connections,
                        seconds=seconds, close=close)
        proc = self.client_exec(lab, *argv, external=external, timeout=seconds + 60,
                                check=False)
        try:
            return parse_wrk(proc.stdout)
        except WrkOutputError as err:
            raise BenchError(f"lab {lab.name}: wrk against {url} failed ({proc.returncode}): "
                             f"{err}\n{proc.stderr.strip()[-400:]}") from err
