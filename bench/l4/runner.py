"""One benchmark run: both labs up side by side, measurements interleaved per service count.

Order: bring up the Tulle lab (eBPF datapath) and the comparison lab (`--no-datapath`),
start nginx on node2 and an idle client on node1 in each, measure the pod IP directly in
both (with the ClusterIP path), then for each service count grow the Tulle lab's Services
(target created last) and rewrite the comparison lab's kube-proxy chains (target last), and
measure both: the ClusterIP from the client pod, and node1's address : nodePort from the
lab's external client (the backend is on node2, so both datapaths SNAT and forward).
Interleaving keeps slow drifts in the machine's other load from favouring one side.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.l4 import kubeproxy, manifests
from bench.l4.config import BenchConfig
from bench.l4.labs import BenchError, BenchLab
from bench.l4.meter import Meter
from bench.l4.results import (
    CLUSTERIP,
    DIRECT_PLAIN,
    DIRECT_TULLE,
    IPTABLES,
    IPTABLES_NODEPORT,
    NODEPORT,
    TULLE,
    TULLE_NODEPORT,
)
from bench.l4.results import services as n_services
from lab.topology import plan_lab

__all__ = ["BenchConfig", "Runner"]

TULLE_LAB = "benchl4"
IPTABLES_LAB = "benchipt"
CLUSTERIP_URL = f"http://{manifests.TARGET_VIP}:{manifests.SERVICE_PORT}/"


def nodeport_url(lab: str) -> str:
    """node1's uplink address : the target's nodePort, as the external client dials it."""
    node1 = plan_lab(lab, 2).nodes[0]
    return f"http://{node1.fabric_ip}:{manifests.TARGET_NODE_PORT}/"


@dataclass
class Runner(Meter):
    tulle_sync: list[dict[str, Any]] = field(default_factory=list)
    iptables_sync: list[dict[str, Any]] = field(default_factory=list)
    tulle_base: int = 0  # services the Tulle lab's agents program before ours exist

    # -- the whole run ---------------------------------------------------------------------
    def run(self) -> None:
        cfg = self.config
        tulle = (BenchLab(TULLE_LAB, True, self.progress,
                          node_port_range=manifests.node_port_range_flag() if cfg.nodeport
                          else None)
                 if TULLE in cfg.labs else None)
        ipt = BenchLab(IPTABLES_LAB, False, self.progress) if IPTABLES in cfg.labs else None
        self.labs = [lab for lab in (tulle, ipt) if lab is not None]
        try:
            backend: dict[str, str] = {}
            for lab in self.labs:
                lab.up()
                backend[lab.name] = self.deploy(lab)
            if tulle is not None:
                self.tulle_base = tulle.programmed_services("node1")
            if CLUSTERIP in cfg.paths:
                for lab, path in self.pair(tulle, DIRECT_TULLE, ipt, DIRECT_PLAIN):
                    self.measure(lab, path, None,
                                 f"http://{backend[lab.name]}:{manifests.BACKEND_PORT}/")
            fillers = 0
            for count in cfg.counts:
                if tulle is not None:
                    fillers = self.tulle_services(tulle, backend[tulle.name], fillers, count)
                if ipt is not None:
                    self.iptables_services(ipt, backend[ipt.name], count)
                if CLUSTERIP in cfg.paths:
                    for lab, path in self.pair(tulle, TULLE, ipt, IPTABLES):
                        self.measure(lab, path, count, CLUSTERIP_URL)
                if NODEPORT in cfg.paths:
                    for lab, path in self.pair(tulle, TULLE_NODEPORT, ipt, IPTABLES_NODEPORT):
                        self.measure(lab, path, count, nodeport_url(lab.name), external=True)
        finally:
            self.teardown()

    @staticmethod
    def pair(tulle: BenchLab | None, tulle_path: str, ipt: BenchLab | None,
             ipt_path: str) -> list[tuple[BenchLab, str]]:
        """The labs of this run with the path each measures, Tulle first."""
        return [(lab, path) for lab, path in ((tulle, tulle_path), (ipt, ipt_path))
                if lab is not None]

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

    # -- Tulle: Services and EndpointSlices through the store ---------------------------------
    def tulle_services(self, lab: BenchLab, backend_ip: str, fillers: int, count: int) -> int:
        """Delete the target, grow the fillers to count - 1, create the target last."""
        record: dict[str, Any] = {"services": count}
        if self.tulle_sync:  # the target exists from the previous count: it goes last again
            lab.delete("service", "target")
            self.wait_silent(lab, CLUSTERIP_URL)
            self.wait_health_count(lab, self.tulle_base + fillers * self.entries)
        wanted = count - 1
        if wanted > fillers:
            record.update(self.add_fillers(lab, backend_ip, fillers, wanted))
        self.settle(lab)
        record.update(self.create_target(lab, count))
        record["node1_last_sync_ms"] = (lab.health("node1").get("datapath") or {}).get(
            "last_sync_ms")
        self.tulle_sync.append(record)
        return wanted

    @property
    def entries(self) -> int:
        """Service entries in each node's maps per Service: a NodePort one also has
        (node address, nodePort) on every node that has an address."""
        return 2 if self.config.nodeport else 1

    def add_fillers(self, lab: BenchLab, backend_ip: str, have: int, want: int) -> dict[str, Any]:
        base = self.tulle_base
        kind = "NodePort" if self.config.nodeport else "ClusterIP"
        self.progress(f"lab {lab.name}: adding {want - have:,} filler {kind} Services and "
                      f"EndpointSlices (batches of {self.config.batch:,})")
        started = time.monotonic()
        apply_s = 0.0
        for first in range(have + 1, want + 1, self.config.batch):
            last = min(first + self.config.batch - 1, want)
            objects = [o for i in range(first, last + 1)
                       for o in manifests.filler_objects(i, backend_ip, self.config.nodeport)]
            apply_s += lab.apply(objects)
            self.progress(f"  applied fillers {first:,}..{last:,} "
                          f"(node1 agent has {lab.programmed_services('node1'):,} services)")
        applied_at = time.monotonic() - started
        reached = self.wait_programmed(lab, base + want * self.entries, started,
                                       timeout=120 + want * 0.05 * self.entries)
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
                                 f"service entries within {timeout:.0f}s (they have {have}); "
                                 f"see the agent logs under /run/tulle/{lab.name}/logs/")
            if now - last_report > 10:
                self.progress(f"  waiting for the agents: node1 "
                              f"{lab.programmed_services('node1'):,}, node2 "
                              f"{lab.programmed_services('node2'):,} of {services:,} service "
                              "entries")
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
        url = CLUSTERIP_URL
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
            apply_s = lab.apply([manifests.target_service(self.config.nodeport)])
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
        nodeport = self.config.nodeport
        services = manifests.iptables_service_ports(backend_ip, count, nodeport)
        text = kubeproxy.restore_text(services, manifests.CLUSTER_CIDR)
        started = time.monotonic()
        lab.in_node("node1", self.config.iptables_restore, input=text)
        restore_s = time.monotonic() - started
        save = self.config.iptables_restore.replace("-restore", "-save")
        saved = lab.in_node("node1", save, "-t", "nat").stdout.splitlines()
        rules = sum(1 for line in saved if line.startswith("-A KUBE-SERVICES "))
        nodeports = sum(1 for line in saved if line.startswith("-A KUBE-NODEPORTS "))
        if rules != count + 1 or nodeports != (count if nodeport else 0):
            raise BenchError(f"lab {lab.name}: expected {count + 1} KUBE-SERVICES and "
                             f"{count if nodeport else 0} KUBE-NODEPORTS rules in node1 after "
                             f"iptables-restore, found {rules} and {nodeports}")
        self.wait_answering(lab, CLUSTERIP_URL, "the target ClusterIP through iptables")
        total = sum(1 for line in saved if line.startswith("-A "))
        self.progress(f"lab {lab.name}: iptables-restore of {n_services(count)} "
                      f"({total:,} nat rules) took {restore_s * 1000:.0f} ms; target is last")
        self.iptables_sync.append({"services": count, "restore_s": round(restore_s, 3),
                                   "nat_rules": total, "kube_services_rules": rules,
                                   "kube_nodeports_rules": nodeports})
