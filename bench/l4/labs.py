"""A lab as the benchmark drives it: through the `tulle` CLI, like a user would.

Everything here shells out to `.venv/bin/tulle` (or `ip netns exec` for the comparison lab's
iptables); nothing touches the root network namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import components, procs
from lab.state import LabPaths

Progress = Callable[[str], None]
TULLE = str(Path(sys.executable).with_name("tulle"))


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says what failed and what to do."""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The lab every benchmark has measured: agents and waypoints started by `lab up` itself (the
# benchmarks restart, profile and time them by pid) and veths built by the kubelet. Named,
# because the CLI's defaults are now Tulle from deploy/ over the CNI chain.
SPAWNED_LAB = ("--install", "spawn", "--cni", "builtin")


@dataclass
class BenchLab:
    name: str
    datapath: bool
    progress: Progress
    namespace: str = "bench"
    node_port_range: str | None = None  # `tulle lab up --service-node-port-range`
    created: bool = field(default=False, init=False)

    # -- the CLI -------------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, TULLE_LAB=self.name)

    def tulle(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                [TULLE, *args], env=self.env, input=input, capture_output=True, text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as err:
            raise BenchError(f"`tulle {' '.join(args)}` did not finish in {timeout:.0f}s") from err
        if check and proc.returncode != 0:
            raise BenchError(
                f"`tulle {' '.join(args)}` failed ({proc.returncode}):\n"
                f"{proc.stdout.strip()}\n{proc.stderr.strip()}"
            )
        return proc

    # -- lifecycle -----------------------------------------------------------------------
    def up(self) -> None:
        self.down(quiet=True)  # a leftover from an interrupted run would carry stale state
        self.created = True
        args = ["lab", "up", "--name", self.name, "--nodes", "2", *SPAWNED_LAB]
        if not self.datapath:
            args.append("--no-datapath")
        if self.node_port_range:
            args += ["--service-node-port-range", self.node_port_range]
        self.progress(f"lab {self.name}: bringing up 2 nodes"
                      + ("" if self.datapath else " without the eBPF datapath"))
        self.tulle(*args, timeout=180)

    def down(self, quiet: bool = False) -> None:
        """Idempotent and never raises: it runs in `finally` blocks."""
        if not quiet:
            self.progress(f"lab {self.name}: tearing down")
        try:
            proc = self.tulle("lab", "down", "--name", self.name, timeout=120, check=False)
            if proc.returncode != 0:
                self.progress(f"lab {self.name}: `tulle lab down` failed: {proc.stderr.strip()}"
                              f" (run `{TULLE} lab down --name {self.name}` by hand)")
        except BenchError as err:
            self.progress(f"lab {self.name}: {err}")
        self.created = False

    # -- objects -------------------------------------------------------------------------
    def apply(self, objects: list[dict[str, Any]], timeout: float = 300) -> float:
        """Apply in one all-or-nothing call; returns the seconds it took."""
        started = time.monotonic()
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
        self.tulle("apply", "-f", "-", input=body, timeout=timeout)
        return time.monotonic() - started

    def delete(self, kind: str, name: str) -> None:
        self.tulle("delete", kind, name, "-n", self.namespace, "--ignore-not-found")

    def get(self, kind: str) -> list[dict[str, Any]]:
        out = self.tulle("get", kind, "-n", self.namespace, "-o", "json").stdout
        return list(json.loads(out).get("items", []))

    def wait_pods_ready(self, names: Iterable[str], timeout: float = 60) -> dict[str, str]:
        """Pod name -> pod IP once every named pod is Ready."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        ips: dict[str, str] = {}
        while time.monotonic() < deadline:
            ips = {}
            for pod in self.get("pods"):
                status = pod.get("status") or {}
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions", []))
                if ready and status.get("podIP"):
                    ips[pod["metadata"]["name"]] = status["podIP"]
            if wanted <= set(ips):
                return ips
            time.sleep(0.3)
        raise BenchError(f"lab {self.name}: pods {sorted(wanted - set(ips))} not Ready within "
                         f"{timeout:.0f}s; see {LabPaths.for_lab(self.name).logs}")

    # -- inside the pods and nodes -------------------------------------------------------
    def exec_argv(self, pod: str, *command: str) -> list[str]:
        return [TULLE, "lab", "exec", "-n", self.namespace, pod, "--", *command]

    def exec(self, pod: str, *command: str, timeout: float = 60,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.tulle("lab", "exec", "-n", self.namespace, pod, "--", *command,
                          timeout=timeout, check=check)

    def exec_external(self, *command: str, timeout: float = 60,
                      check: bool = True) -> subprocess.CompletedProcess[str]:
        """In the lab's external client: a machine outside the cluster, on the fabric."""
        return self.tulle("lab", "exec", "--external", "--", *command, timeout=timeout,
                          check=check)

    def node_netns(self, node: str) -> str:
        return f"tulle-{self.name}-{node}"

    def in_node(self, node: str, *command: str, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command in a node's network namespace (the comparison lab's iptables)."""
        argv = ["ip", "netns", "exec", self.node_netns(node), *command]
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed ({proc.returncode}): "
                             f"{proc.stderr.strip()[-600:]}")
        return proc

    # -- agent health and lab processes --------------------------------------------------
    def health(self, node: str) -> dict[str, Any]:
        path = components.agent_health(LabPaths.for_lab(self.name), node)
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def programmed_services(self, node: str) -> int:
        return int((self.health(node).get("datapath") or {}).get("services", 0))

    def process_pids(self) -> dict[str, int]:
        """The lab's own processes (controller, agents, DNS, relay), not its pods."""
        paths = LabPaths.for_lab(self.name)
        if not paths.procs.is_dir():
            return {}
        return {r.role: r.pid for r in procs.load_records(paths.procs) if procs.is_alive(r)}

    def stop_processes(self, role_prefix: str) -> list[str]:
        """Stop this lab's own processes whose role starts with `role_prefix` (checked by PID
        and start time, so nothing else is ever signalled). `tulle lab down` copes."""
        paths = LabPaths.for_lab(self.name)
        stopped = []
        for rec in procs.load_records(paths.procs):
            if rec.role.startswith(role_prefix) and procs.terminate(rec):
                stopped.append(rec.role)
        return stopped

    def netns_inodes(self) -> set[int]:
        """Inodes of every network namespace of this lab (nodes, fabric, pods)."""
        found = set()
        for ns in Path("/var/run/netns").glob(f"tulle-{self.name}-*"):
            try:
                found.add(ns.stat().st_ino)
            except OSError:
                continue
        return found

    def lab_cpu(self) -> dict[str, float]:
        return {role: cpu_seconds(pid) for role, pid in self.process_pids().items()}

    def wait_idle(self, *, cores: float = 0.15, window: float = 1.0,
                  timeout: float = 90) -> float | None:
        """Wait until the lab's processes together use under `cores` over `window` seconds
        (an agent still resyncing would steal CPU from the measurement). Returns the seconds
        waited, or None if they never went quiet."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            before = self.lab_cpu()
            time.sleep(window)
            after = self.lab_cpu()
            used = sum(after.get(k, 0.0) - v for k, v in before.items()) / window
            if used < cores:
                return time.monotonic() - started
        return None
