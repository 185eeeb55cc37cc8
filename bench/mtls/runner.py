"""One bench-mtls run: a 2-node lab, nginx on node2, a client on node1, the modes in turn.

Order: `l4` (the `plain` Service, kernel only), `waypoint` (the `routed` Service, whose
HTTPRoute sends every request through node1's waypoint), then both namespaces are enrolled
(`tulle.io/mtls: "true"`) and `mtls` is measured on the `plain` Service again, if the build
can carry it (bench.mtls.availability); enrolment comes last because it changes the `plain`
Service's path for good. Per mode: latency at a fixed rate (bench.mtls.loadgen), maximum
requests/s (wrk, closed loop), one-stream bulk throughput (curl), and the CPU of both
waypoints over each.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.l4 import machine
from bench.l4.labs import SPAWNED_LAB, BenchError, BenchLab, Progress
from bench.l4.wrk import WrkOutputError, parse_wrk, wrk_argv
from bench.mtls import availability, client, manifests, waypoints
from identity.hbone import HBONE_PORT
from identity.spiffe import DEFAULT_TRUST_DOMAIN, workload_id

LAB = "benchmtls"
MODES = ("l4", "waypoint", "mtls")
NODES = ("node1", "node2")


@dataclass(frozen=True)
class BenchConfig:
    rate: float = 1000.0
    connections: int = 10
    warmup: float = 3.0
    seconds: float = 10.0
    max_seconds: int = 10
    wrk_threads: int = 2
    wrk_connections: int = 32
    bulk_mib: int = 512
    bulk_runs: int = 3
    modes: tuple[str, ...] = MODES
    mtls_wait: float = 45.0  # for the agents to hold both SVIDs after enrolment
    lab_up_args: tuple[str, ...] = ()  # extra `tulle lab up` options (e.g. to start the CA)
    engine: str = "c"  # the fixed-rate client: loadgen.c ("c") or the Python threads
    calibrate_seconds: float = 5.0  # per engine, against nginx on the backend's loopback
    profile_seconds: int = 8  # py-spy of both waypoints in an extra fixed-rate run; 0: none


@dataclass
class ModeResult:
    mode: str
    available: bool = True
    reason: str | None = None
    fixed: dict[str, Any] | None = None
    max: dict[str, Any] | None = None
    bulk: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "available": self.available,
            "reason": self.reason,
            "fixed": self.fixed,
            "max": self.max,
            "bulk": self.bulk,
            "profile": self.profile,
            "evidence": self.evidence,
        }


@dataclass
class Runner:
    config: BenchConfig
    progress: Progress
    results: list[ModeResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server = BenchLab(LAB, True, self.progress, namespace=manifests.SERVER_NS)
        self.client = BenchLab(LAB, True, self.progress, namespace=manifests.CLIENT_NS)
        self.workdir = Path(tempfile.gettempdir()) / LAB

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.up()
            self.deploy()
            if self.config.calibrate_seconds > 0:
                self.calibrate()
            for mode in self.config.modes:
                self.results.append(self.mode(mode))
        finally:
            self.server.down()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def up(self) -> None:
        self.server.down(quiet=True)  # a leftover of an interrupted run carries stale state
        self.server.created = True
        self.progress(f"lab {LAB}: bringing up 2 nodes")
        self.server.tulle(
            "lab", "up", "--name", LAB, "--nodes", "2", *SPAWNED_LAB, *self.config.lab_up_args,
            timeout=240,
        )

    def deploy(self) -> None:
        www = self.workdir / "www"
        www.mkdir(parents=True, exist_ok=True)
        with open(www / manifests.BULK_PATH.lstrip("/"), "wb") as f:
            f.truncate(self.config.bulk_mib * 2**20)  # sparse: served from the page cache
        conf = self.workdir / "nginx.conf"
        conf.write_text(manifests.nginx_conf(self.workdir))
        if self.c_binary is not None:
            client.build(self.c_binary)
        self.server.apply(manifests.namespaces(enrolled=False))
        self.server.apply([manifests.backend_pod(conf), manifests.client_pod()])
        self.server.wait_pods_ready(["backend"])
        self.client.wait_pods_ready(["client"])
        self.server.apply(manifests.services())
        for vip, what in ((manifests.PLAIN_VIP, "plain"), (manifests.ROUTED_VIP, "routed")):
            self.wait_answering(manifests.url(vip), f"the {what} Service")
        self.progress("nginx on node2 answers through both Services from the client on node1")

    @property
    def c_binary(self) -> Path | None:
        return self.workdir / "loadgen" if self.config.engine == "c" else None

    def loadgen_argv(self, url: str, engine: str, warmup: float, seconds: float) -> list[str]:
        binary = self.workdir / "loadgen" if engine == "c" else None
        cfg = self.config
        return client.argv(url, rate=cfg.rate, connections=cfg.connections, warmup=warmup,
                           seconds=seconds, c_binary=binary)  # fmt: skip

    def calibrate(self) -> None:
        """The client's own floor: each engine against nginx over the backend pod's loopback
        (no datapath, no waypoint), same rate and connections as the measurement."""
        url = f"http://127.0.0.1:{manifests.BACKEND_PORT}{manifests.SMALL_PATH}"
        engines = ("c", "python") if self.config.engine == "c" else ("python",)
        for engine in engines:
            argv = self.loadgen_argv(url, engine, 1.0, self.config.calibrate_seconds)
            proc = self.server.exec(
                "backend", *argv, check=False, timeout=self.config.calibrate_seconds + 60
            )
            out = client.result(proc, url)
            self.calibration[engine] = {
                k: out.get(k) for k in ("latency", "send_lag", "errors", "measured")
            }
            lat = out.get("latency") or {}
            self.progress(
                f"client floor ({engine}, loopback in the backend pod): p50 "
                f"{lat.get('p50_ms')} p90 {lat.get('p90_ms')} p99 "
                f"{lat.get('p99_ms')} ms"
            )

    # -- inside the client pod --------------------------------------------------------------
    def curl(self, *args: str, timeout: float = 20) -> str:
        proc = self.client.exec("client", "curl", "-s", *args, check=False, timeout=timeout)
        return proc.stdout

    def wait_answering(self, url: str, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.curl("-m", "1", "-o", "/dev/null", "-w", "%{http_code}", url) == "200":
                return
            time.sleep(0.3)
        raise BenchError(
            f"{what} ({url}) did not answer 200 from the client pod within {timeout:.0f}s"
        )

    def forwarded_for(self, vip: str) -> str:
        """What nginx saw in X-Forwarded-For: the waypoint sets it, the kernel path cannot."""
        return self.curl("-m", "2", manifests.url(vip, manifests.XFF_PATH)).strip()

    # -- one mode ---------------------------------------------------------------------------
    def mode(self, mode: str) -> ModeResult:
        res = ModeResult(mode)
        vip = manifests.ROUTED_VIP if mode == "waypoint" else manifests.PLAIN_VIP
        if mode == "mtls":
            res.reason = self.enrol_and_check(res.evidence)
            if res.reason is not None:
                res.available = False
                self.progress(f"mtls: not available: {res.reason}")
                return res
        else:
            xff = self.forwarded_for(vip)
            res.evidence["nginx_saw"] = xff
            through_waypoint = xff not in ("", "xff=")
            if through_waypoint != (mode == "waypoint"):
                raise BenchError(
                    f"mode {mode}: nginx saw {xff!r}: the request "
                    f"{'did not go' if mode == 'waypoint' else 'went'} through a "
                    "waypoint"
                )
        self.progress(f"{mode}: fixed {self.config.rate:,.0f} requests/s")
        res.fixed = self.fixed_rate(manifests.url(vip))
        self.progress(f"{mode}: maximum requests/s (wrk)")
        res.max = self.max_rps(manifests.url(vip))
        self.progress(f"{mode}: one-stream bulk throughput")
        res.bulk = self.bulk(manifests.url(vip, manifests.BULK_PATH))
        if mode != "l4" and self.config.profile_seconds > 0:
            self.progress(f"{mode}: where the waypoints' time goes (py-spy, an extra run)")
            res.profile = self.profile(mode, manifests.url(vip))
        return res

    def enrol_and_check(self, evidence: dict[str, Any]) -> str | None:
        """Label both namespaces, then the reason mTLS cannot be measured, or None."""
        self.server.apply(manifests.namespaces(enrolled=True))
        wanted = {
            "node1": str(workload_id(DEFAULT_TRUST_DOMAIN, manifests.CLIENT_NS)),
            "node2": str(workload_id(DEFAULT_TRUST_DOMAIN, manifests.SERVER_NS)),
        }
        started = time.monotonic()
        while True:
            health = {n: self.server.health(n) for n in NODES}
            gap = availability.svid_gap(health, wanted)
            waited = time.monotonic() - started
            # Health reports are rewritten every second: an agent that reports no `svids`
            # at all after 5 s has no SVID manager; one that lacks an ID may still fetch it.
            no_manager = any(availability.svid_ids(h) is None for h in health.values())
            if gap is None or waited > self.config.mtls_wait or (no_manager and waited > 5):
                break
            time.sleep(1.0)
        evidence["svids"] = {
            n: sorted(availability.svid_ids(self.server.health(n)) or []) for n in NODES
        }
        if gap is not None:
            return gap
        # The agents may program the redirect a moment after the labels: try for a while.
        deadline = time.monotonic() + self.config.mtls_wait / 3
        attempts, peers = 0, list[str]()
        while not peers and (attempts == 0 or time.monotonic() < deadline):
            attempts += 1
            peers = self.tunnel_peers_during_a_stream()
        evidence["node2_tunnel_peers"] = peers
        return availability.tunnel_gap(peers, attempts)

    def tunnel_peers_during_a_stream(self, seconds: float = 3.0) -> list[str]:
        """Peers of node2's port-15008 connections while a rate-limited download of the
        bulk file through the `plain` Service is in flight (a live connection, so a pool
        that closes idle tunnels quickly cannot hide the tunnel)."""
        url = manifests.url(manifests.PLAIN_VIP, manifests.BULK_PATH)
        argv = self.client.exec_argv("client", "curl", "-s", "-o", "/dev/null", "-m",
                                     str(seconds), "--limit-rate", "1M", url)  # fmt: skip
        stream = subprocess.Popen(argv, env=self.client.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            time.sleep(seconds / 2)
            ss = self.server.in_node("node2", "ss", "-Htn", "state", "established").stdout
        finally:
            stream.wait(timeout=seconds + 30)
        return availability.tunnel_peers(ss, HBONE_PORT)

    # -- measurements ------------------------------------------------------------------------
    def waypoint_cpu(self) -> dict[str, waypoints.Snapshot]:
        return waypoints.snapshot(self.server.process_pids())

    def profile(self, mode: str, url: str) -> dict[str, Any]:
        """py-spy on both waypoints during a fixed-rate run that is not a measured one."""
        cfg = self.config
        argv = self.loadgen_argv(url, cfg.engine, 0.5, cfg.profile_seconds + 1.0)

        def load() -> None:
            self.client.exec("client", *argv, check=False, timeout=cfg.profile_seconds + 60)

        pids = self.server.process_pids()
        return waypoints.profile(pids, self.workdir, mode, cfg.profile_seconds, load)

    def _cpu(self, before: dict[str, waypoints.Snapshot], requests: int) -> dict[str, Any]:
        used = waypoints.cpu_used(before, self.waypoint_cpu(), requests)
        if None in used["waypoint_cpu_s"].values():
            self.notes.append(f"a waypoint was missing or restarted during a run: {used}")
        return used

    def settle(self) -> dict[str, Any]:
        waited = self.server.wait_idle()
        if waited is None:
            self.notes.append(
                "the lab's processes never went quiet (< 0.15 core) before a measurement"
            )
        others = machine.OtherLoad(
            self.server.netns_inodes(), set(self.server.process_pids().values())
        )
        others.start()
        return {"load1_start": machine.loadavg()[0], "others": others}

    @staticmethod
    def _machine(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"load1_start": ctx["load1_start"], "other_cores": ctx["others"].cores()}

    def fixed_rate(self, url: str) -> dict[str, Any]:
        cfg = self.config
        ctx = self.settle()
        before = self.waypoint_cpu()
        argv = self.loadgen_argv(url, cfg.engine, cfg.warmup, cfg.seconds)
        proc = self.client.exec("client", *argv, check=False, timeout=cfg.warmup + cfg.seconds + 60)
        out = client.result(proc, url)
        out.update(self._cpu(before, int(out["completed"])))
        out["machine"] = self._machine(ctx)
        lat = out.get("latency") or {}
        self.progress(
            f"  p50 {lat.get('p50_ms')} p90 {lat.get('p90_ms')} p99 "
            f"{lat.get('p99_ms')} ms over {out['measured']} requests, "
            f"errors {out['errors']}, send lag p99 "
            f"{(out.get('send_lag') or {}).get('p99_ms')} ms, waypoint vCPU/krps "
            f"{out['vcpu_per_krps']}"
        )
        return out

    def wrk(self, url: str, seconds: int) -> Any:
        cfg = self.config
        argv = wrk_argv(
            url,
            threads=cfg.wrk_threads,
            connections=cfg.wrk_connections,
            seconds=seconds,
            close=False,
        )
        proc = self.client.exec("client", *argv, timeout=seconds + 60, check=False)
        try:
            return parse_wrk(proc.stdout)
        except WrkOutputError as err:
            raise BenchError(f"wrk against {url} failed ({proc.returncode}): {err}") from err

    def max_rps(self, url: str) -> dict[str, Any]:
        self.wrk(url, 2)  # warm-up: connections, the waypoint's pools, caches
        ctx = self.settle()
        before = self.waypoint_cpu()
        result = self.wrk(url, self.config.max_seconds)
        out = {
            **result.to_json(),
            **self._cpu(before, result.requests),
            "machine": self._machine(ctx),
        }
        self.progress(
            f"  {result.rps:,.0f} requests/s, p99 {result.p99_ms:.2f} ms, errors "
            f"{result.errors}, waypoint vCPU/krps {out['vcpu_per_krps']}"
        )
        return out

    def bulk(self, url: str) -> dict[str, Any]:
        runs: list[dict[str, Any]] = []
        speeds: list[float] = []
        for _ in range(self.config.bulk_runs):
            before = self.waypoint_cpu()
            fmt = "%{http_code} %{size_download} %{time_total}"
            text = self.curl("-o", "/dev/null", "-m", "60", "-w", fmt, url, timeout=90)
            used = waypoints.cpu_used(before, self.waypoint_cpu(), 1)["waypoint_cpu_s"]
            code, size, total = (text.split() + ["", "", ""])[:3]
            if code != "200" or int(size or 0) != self.config.bulk_mib * 2**20:
                raise BenchError(f"bulk download {url}: got {text!r}")
            speeds.append(round(int(size) / float(total) / 2**20, 1))
            runs.append(
                {
                    "bytes": int(size),
                    "seconds": float(total),
                    "mib_per_s": speeds[-1],
                    "waypoint_cpu_s": used,
                }
            )
        best = statistics.median(speeds)
        self.progress(
            f"  median {best:,.0f} MiB/s over {len(runs)} downloads of {self.config.bulk_mib} MiB"
        )
        return {"runs": runs, "median_mib_per_s": best}
