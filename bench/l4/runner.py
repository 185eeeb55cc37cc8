"""One benchmark run: both labs up side by side, measurements interleaved per service count.

Order: bring up the Tulle lab (eBPF datapath) and the comparison lab (`--no-datapath`),
start nginx on node2 and an idle client on node1 in each, measure the pod IP directly in
both, then for each service count grow the Tulle lab's Services (target created last) and
rewrite the comparison lab's kube-proxy chains (target last), and measure both. Interleaving
keeps slow drifts in the machine's other load from favouring one side.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.l4 import kubeproxy, machine, manifests
from bench.l4.labs import BenchError, BenchLab, Progress
from bench.l4.results import (
    CLEAN_CORES,
    CLOSE,
    DIRECT_PLAIN,
    DIRECT_TULLE,
    IPTABLES,
    KEEPALIVE,
    PATH_TITLES,
    TULLE,
    Measurement,
    Run,
)
from bench.l4.results import services as n_services
from bench.l4.wrk import WrkOutputError, parse_wrk, wrk_argv

TULLE_LAB = "benchl4"
IPTABLES_LAB = "benchipt"


@dataclass(frozen=True)
class BenchConfig:
    counts: tuple[int, ...] = (1, 1_000, 10_000)
    seconds: int = 10
    repeats: int = 2
    threads: int = 2
    connections: int = 32
    warmup_seconds: int = 2
    batch: int = 2_500  # filler Services per `tulle apply` (two objects each)
    labs: tuple[str, ...] = (TULLE, IPTABLES)
    iptables_restore: str = "iptables-restore"
    quick: bool = False
    # On a shared machine: when no run of a figure was clean (see results.CLEAN_CORES), wait
    # up to quiet_wait s for the others to calm down and run again, at most extra_runs more
    # times per figure and noise_budget s of waiting and re-running in the whole benchmark.
    extra_runs: int = 2
    quiet_wait: float = 30.0
    noise_budget: float = 240.0

    def estimate_seconds(self) -> int:
        per_target = self.repeats * 2 * (self.seconds + 2) + self.warmup_seconds + 3
        targets = len(self.labs) * (1 + len(self.counts))
        sync = 60 * max(self.counts) / 10_000 if TULLE in self.labs else 0
        return int(targets * per_target + sync + 40 * len(self.labs))


@dataclass
class Runner:
    config: BenchConfig
    progress: Progress
    measurements: list[Measurement] = field(default_factory=list)
    tulle_sync: list[dict[str, Any]] = field(default_factory=list)
    iptables_sync: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labs: list[BenchLab] = field(default_factory=list)
    tulle_base: int = 0  # services the Tulle lab's agents program before ours exist
    noise_spent: float = 0.0  # seconds spent waiting out other load and re-running

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        tulle = BenchLab(TULLE_LAB, True, self.progress) if TULLE in cfg.labs else None
        ipt = BenchLab(IPTABLES_LAB, False, self.progress) if IPTABLES in cfg.labs else None
        self.labs = [lab for lab in (tulle, ipt) if lab is not None]
        try:
            backend: dict[str, str] = {}
            for lab in self.labs:
                lab.up()
                backend[lab.name] = self.deploy(lab)
            if tulle is not None:
                self.tulle_base = tulle.programmed_services("node1")
                self.measure(tulle, DIRECT_TULLE, None, f"http://{backend[tulle.name]}:{manifests.BACKEND_PORT}/")
            if ipt is not None:
                self.measure(ipt, DIRECT_PLAIN, None, f"http://{backend[ipt.name]}:{manifests.BACKEND_PORT}/")
            fillers = 0
            for count in cfg.counts:
                if tulle is not None:
                    fillers = self.tulle_services(tulle, backend[tulle.name], fillers, count)
                if ipt is not None:
                    self.iptables_services(ipt, backend[ipt.name], count)
                target = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"
                if tulle is not None:
                    self.measure(tulle, TULLE, count, target)
                if ipt is not None:
                    self.measure(ipt, IPTABLES, count, target)
        finally:
            self.teardown()

    def teardown(self) -> None:
        for lab in self.labs:
            if lab.created:
                lab.down()
            shutil.rmtree(self.workdir(lab), ignore_errors=True)

    @staticmethod
    def workdir(lab: BenchLab) -> Path:
        """nginx's config, pid file and temp paths."""
        return Path(tempfile.gettempdir()) / lab.name

    # -- workload --------------------------------------------------------------------------
    def deploy(self, lab: BenchLab) -> str:
        """nginx on node2, an idle client on node1; returns the backend's pod IP."""
        workdir = self.workdir(lab)
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "nginx.conf"
        conf.write_text(manifests.nginx_conf(workdir))
        lab.apply([manifests.namespace()])
        lab.apply([manifests.backend_pod(conf), manifests.client_pod()])
        ips = lab.wait_pods_ready(["backend", "client"])
        url = f"http://{ips['backend']}:{manifests.BACKEND_PORT}/"
        self.wait_answering(lab, url, "the nginx backend")
        self.progress(f"lab {lab.name}: client {ips['client']} on node1, "
                      f"nginx {ips['backend']} on node2")
        return ips["backend"]

    def http_code(self, lab: BenchLab, url: str) -> str:
        proc = lab.exec("client", "curl", "-s", "-m", "1", "-o", "/dev/null", "-w", "%{http_code}",
                        url, check=False, timeout=20)
        return proc.stdout.strip()

    def wait_answering(self, lab: BenchLab, url: str, what: str, timeout: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.http_code(lab, url) == "200":
                return time.monotonic() - started
            time.sleep(0.2)
        raise BenchError(f"lab {lab.name}: {what} ({url}) did not answer 200 from the client "
                         f"pod within {timeout:.0f}s")

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

    # -- Tulle: Services and EndpointSlices through the store ---------------------------------
    def tulle_services(self, lab: BenchLab, backend_ip: str, fillers: int, count: int) -> int:
        """Delete the target, grow the fillers to count - 1, create the target last."""
        target_url = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"
        record: dict[str, Any] = {"services": count}
        if self.tulle_sync:  # the target exists from the previous count: it goes last again
            lab.delete("service", "target")
            self.wait_silent(lab, target_url)
            self.wait_health_count(lab, self.tulle_base + fillers)
        wanted = count - 1
        if wanted > fillers:
            record.update(self.add_fillers(lab, backend_ip, fillers, wanted))
        self.settle(lab)
        record.update(self.create_target(lab, count))
        record["node1_last_sync_ms"] = (lab.health("node1").get("datapath") or {}).get(
            "last_sync_ms")
        self.tulle_sync.append(record)
        return wanted

    def add_fillers(self, lab: BenchLab, backend_ip: str, have: int, want: int) -> dict[str, Any]:
        base = self.tulle_base
        self.progress(f"lab {lab.name}: adding {want - have:,} filler Services and "
                      f"EndpointSlices (batches of {self.config.batch:,})")
        started = time.monotonic()
        apply_s = 0.0
        for first in range(have + 1, want + 1, self.config.batch):
            last = min(first + self.config.batch - 1, want)
            objects = [o for i in range(first, last + 1)
                       for o in manifests.filler_objects(i, backend_ip)]
            apply_s += lab.apply(objects)
            self.progress(f"  applied fillers {first:,}..{last:,} "
                          f"(node1 agent has {lab.programmed_services('node1'):,} services)")
        applied_at = time.monotonic() - started
        reached = self.wait_programmed(lab, base + want, started, timeout=120 + want * 0.05)
        self.progress(f"  all {want:,} fillers programmed: node1 after {reached['node1']:.1f}s, "
                      f"node2 after {reached['node2']:.1f}s (apply took {apply_s:.1f}s)")
        return {"fillers_added": want - have, "fillers_apply_s": round(apply_s, 2),
                "fillers_applied_at_s": round(applied_at, 2),
                "fillers_node1_programmed_s": round(reached["node1"], 2),
                "fillers_node2_programmed_s": round(reached["node2"], 2)}

    def wait_programmed(self, lab: BenchLab, services: int, started: float,
                        timeout: float) -> dict[str, float]:
        reached: dict[str, float] = {}
        last_report = time.monotonic()
        while len(reached) < 2:
            now = time.monotonic()
            for node in ("node1", "node2"):
                if node not in reached and lab.programmed_services(node) >= services:
                    reached[node] = now - started
            if now - started > timeout:
                have = {n: lab.programmed_services(n) for n in ("node1", "node2")}
                raise BenchError(f"lab {lab.name}: the agents did not program {services:,} "
                                 f"services within {timeout:.0f}s (they have {have}); see the "
                                 f"agent logs under /run/tulle/{lab.name}/logs/")
            if now - last_report > 10:
                self.progress(f"  waiting for the agents: node1 "
                              f"{lab.programmed_services('node1'):,}, node2 "
                              f"{lab.programmed_services('node2'):,} of {services:,} services")
                last_report = now
            time.sleep(0.1)
        return reached

    def wait_health_count(self, lab: BenchLab, services: int, timeout: float = 30) -> None:
        """Wait for node1's health report to show exactly `services` (it is written once a
        second, so it may lag the maps)."""
        deadline = time.monotonic() + timeout
        while lab.programmed_services("node1") != services:
            if time.monotonic() > deadline:
                raise BenchError(f"lab {lab.name}: node1's agent reports "
                                 f"{lab.programmed_services('node1'):,} services, expected "
                                 f"{services:,}, {timeout:.0f}s after deleting the target")
            time.sleep(0.1)

    def create_target(self, lab: BenchLab, count: int) -> dict[str, Any]:
        """Create the target Service while a probe in the client pod polls its ClusterIP
        every 20 ms: the time to the first 200 is the end-to-end propagation (store ->
        EndpointSlice controller -> agent -> BPF maps)."""
        url = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"
        curl = f"curl -s --connect-timeout 0.1 -m 0.5 -o /dev/null -w %{{http_code}} {url}"
        script = (
            'echo ready; for i in $(seq 1 3000); do '
            f'if [ "$({curl})" = 200 ]; then date +%s.%N; exit 0; fi; sleep 0.02; done; exit 1'
        )
        probe = subprocess.Popen(lab.exec_argv("client", "bash", "-c", script),
                                 env=lab.env, stdout=subprocess.PIPE, text=True)
        try:
            assert probe.stdout is not None
            if probe.stdout.readline().strip() != "ready":
                raise BenchError(f"lab {lab.name}: the propagation probe did not start")
            started = time.time()
            apply_s = lab.apply([manifests.target_service()])
            out, _ = probe.communicate(timeout=180)
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()
        if probe.returncode != 0:
            raise BenchError(f"lab {lab.name}: the target ClusterIP {url} never answered after "
                             f"the Service was created ({count:,} services)")
        first_ok = float(out.strip().splitlines()[-1]) - started
        self.progress(f"lab {lab.name}: target Service #{count:,} created; its ClusterIP "
                      f"answered {first_ok * 1000:.0f} ms later (apply took "
                      f"{apply_s * 1000:.0f} ms)")
        return {"target_apply_s": round(apply_s, 3), "target_first_ok_s": round(first_ok, 3)}

    # -- iptables: kube-proxy's chains in the comparison lab's node1 ---------------------------
    def iptables_services(self, lab: BenchLab, backend_ip: str, count: int) -> None:
        endpoint = (kubeproxy.Endpoint(backend_ip, manifests.BACKEND_PORT),)
        services = [
            kubeproxy.ServicePort(manifests.NAMESPACE, manifests.filler_name(i), "http",
                                  manifests.filler_vip(i), manifests.SERVICE_PORT, endpoint)
            for i in range(1, count)
        ]
        services.append(kubeproxy.ServicePort(manifests.NAMESPACE, "target", "http",
                                               manifests.TARGET_VIP, manifests.SERVICE_PORT,
                                               endpoint))
        text = kubeproxy.restore_text(services, manifests.CLUSTER_CIDR)
        started = time.monotonic()
        lab.in_node("node1", self.config.iptables_restore, input=text)
        restore_s = time.monotonic() - started
        save = self.config.iptables_restore.replace("-restore", "-save")
        saved = lab.in_node("node1", save, "-t", "nat").stdout
        rules = sum(1 for line in saved.splitlines() if line.startswith("-A KUBE-SERVICES "))
        if rules != count + 1:
            raise BenchError(f"lab {lab.name}: expected {count + 1} KUBE-SERVICES rules in "
                             f"node1 after iptables-restore, found {rules}")
        url = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"
        self.wait_answering(lab, url, "the target ClusterIP through iptables")
        total = sum(1 for line in saved.splitlines() if line.startswith("-A "))
        self.progress(f"lab {lab.name}: iptables-restore of {n_services(count)} "
                      f"({total:,} nat rules) took {restore_s * 1000:.0f} ms; target is last")
        self.iptables_sync.append({"services": count, "restore_s": round(restore_s, 3),
                                   "nat_rules": total, "kube_services_rules": rules})

    # -- wrk -------------------------------------------------------------------------------
    def measure(self, lab: BenchLab, path: str, services: int | None, url: str) -> None:
        cfg = self.config
        where = PATH_TITLES[path] + (f", {n_services(services)}" if services else "")
        self.progress(f"measuring {where}: {url}")
        self.settle(lab)
        self.wait_answering(lab, url, where)
        if cfg.warmup_seconds:
            self.wrk(lab, url, cfg.warmup_seconds, close=True)
        modes = {CLOSE: Measurement(path, services, CLOSE, url),
                 KEEPALIVE: Measurement(path, services, KEEPALIVE, url)}
        for _ in range(cfg.repeats):
            for m in modes.values():
                self.run_once(lab, m)
        for m in modes.values():
            extra = 0
            while not any(r.clean for r in m.runs) and extra < cfg.extra_runs:
                started = time.monotonic()
                if self.noise_spent >= cfg.noise_budget:
                    break
                self.progress(f"  no clean {m.mode} run (others took >= {CLEAN_CORES} cores): "
                              "waiting for quiet and running again")
                self.wait_quiet(min(cfg.quiet_wait, cfg.noise_budget - self.noise_spent))
                self.run_once(lab, m)
                extra += 1
                self.noise_spent += time.monotonic() - started
        self.measurements += modes.values()

    def run_once(self, lab: BenchLab, m: Measurement) -> None:
        load1 = machine.loadavg()[0]
        others = self.other_load()
        before = lab.lab_cpu()
        result = self.wrk(lab, m.url, self.config.seconds, close=m.mode == CLOSE)
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

    def wrk(self, lab: BenchLab, url: str, seconds: int, *, close: bool) -> Any:
        cfg = self.config
        argv = wrk_argv(url, threads=cfg.threads, connections=cfg.connections,
                        seconds=seconds, close=close)
        proc = lab.exec("client", *argv, timeout=seconds + 60, check=False)
        try:
            return parse_wrk(proc.stdout)
        except WrkOutputError as err:
            raise BenchError(f"lab {lab.name}: wrk against {url} failed ({proc.returncode}): "
                             f"{err}\n{proc.stderr.strip()[-400:]}") from err
