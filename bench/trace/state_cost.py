"""What tracing a connection's life costs per TCP connection: the ``inet_sock_set_state``
tracepoint, classic against raw, and sock_ops on the pod cgroup, which replaces it there.

    sudo .venv/bin/python -m bench.trace.state_cost [CONNECTIONS] [ROUNDS] [--stats]

The kernel's BPF run-time stats (``--attribute``) time the program only: the classic
tracepoint's record fill (two sockaddr copies and the other fields, for every state change
of every TCP socket of the node) and the perf-event dispatch happen before it and are never
counted. This measures from outside. In a private network namespace (removed at the end),
one process opens and closes CONNECTIONS loopback connections (connect, accept, the server
closes, then the client: ten state changes per connection); the CPU time of the process
(user + system: on loopback both ends' kernel work runs in it) is measured with the tracer
off, with the classic tracepoint, with the raw one and with sock_ops on a cgroup of the
bench's own (the process runs in it throughout; removed at the end), each for sockets the
tracer does not trace (every other socket of a node for the tracepoints; for sock_ops, only
the cgroup's, a pod's that is not local) and for traced ones (a local pod's), ROUNDS times in
interleaved order, and the medians are compared. A socket outside the cgroup never runs the
sock_ops program: it costs nothing, which the tracepoints cannot offer. With ``--stats``
the kernel's run-time stats are on too (they add their clock reads to every run) and each
program's runs per connection and ns per run are printed beside the CPU time: the part of
the cost inside the programs. The tracer attaches node-wide while it runs: run it under the
lab lock. A side-by-side check, not the issue's benchmark
(`make bench-trace`).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.trace.probe_cost import ADDR, NS
from bench.tracecost_stats import parse_fdinfo

CHILD = r"""
import resource, socket, sys
n, addr = int(sys.argv[1]), sys.argv[2]
srv = socket.socket(); srv.bind((addr, 0)); srv.listen(64)
port = srv.getsockname()[1]
before = resource.getrusage(resource.RUSAGE_SELF)
for _ in range(n):
    c = socket.create_connection((addr, port)); s, _ = srv.accept()
    s.close(); c.close()
after = resource.getrusage(resource.RUSAGE_SELF)
print(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
"""


def cpu_seconds(connections: int, cgroup: Path) -> float:
    from lab.cgroups import in_cgroup

    # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup
    out = subprocess.run(["nsenter", f"--net=/var/run/netns/{NS}", "--",
                          *in_cgroup(cgroup, [sys.executable, "-c", CHILD, str(connections),
                                              ADDR])],
                         check=True, capture_output=True, text=True)
    return float(out.stdout)


def _prog_stats(tracer: Any) -> dict[str, tuple[int, int]]:
    """hook -> (runs, run ns) of the tracer's programs, from their fdinfo."""
    out = {}
    for hook, fd in tracer.hooks.prog_fds.items():
        stats = parse_fdinfo(Path(f"/proc/self/fdinfo/{fd}").read_text())
        out[hook] = (stats.run_cnt, stats.run_time_ns) if stats else (0, 0)
    return out


def _drained(tracer: object, run: Callable[[], float]) -> float:
    """`run()` while a thread drains the tracer's ring (a full ring would skip the output)."""
    stop = threading.Event()

    def drain() -> None:
        while not stop.wait(0.05):
            tracer.read_raw()  # type: ignore[attr-defined]

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        return run()
    finally:
        stop.set()
        thread.join()


def main(connections: int, rounds: int, stats: bool = False) -> None:
    from agent.datapath.features import feature_probe
    from agent.tracing.tracer import CLASSIC_STATE, RAW_STATE, Tracer, plan_hooks
    from lab import cgroups

    cgroup = cgroups.make(cgroups.node_cgroup(f"statecost{os.getpid()}", "n1"))
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", NS, "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
        raw = plan_hooks(feature_probe())  # the other hooks as a node has them, in both
        classic = dataclasses.replace(raw, hooks=tuple(
            CLASSIC_STATE if h == RAW_STATE else h for h in raw.hooks))
        tracers = {"classic": Tracer.load(classic)}
        tracers["raw"] = Tracer.load(raw)
        tracers["sock_ops"] = Tracer.load(plan_hooks(feature_probe(), str(cgroup)))
        try:
            if stats:
                from bench.bpfprogs import bpf_stats

                with bpf_stats():
                    _compare(tracers, connections, rounds, cgroup)
            else:
                _compare(tracers, connections, rounds, cgroup)
        finally:
            for tracer in tracers.values():
                tracer.close()
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=True)
        cgroups.remove(cgroup.parent)
        cgroups.remove_root_if_empty()


def _compare(tracers: dict[str, Any], connections: int, rounds: int, cgroup: Path) -> None:
    for kind, tracer in tracers.items():
        print(f"{kind}: {tracer.plan.describe()}", flush=True)
        tracer.set_attached(False)
    runs: dict[str, list[float]] = {}
    progs: dict[str, dict[str, list[int]]] = {}
    for _ in range(rounds):
        runs.setdefault("off", []).append(cpu_seconds(connections, cgroup))
        for kind, tracer in tracers.items():
            tracer.set_attached(True)
            try:
                for traced in (False, True):
                    tracer.set_local([ADDR] if traced else [])
                    label = f"{kind}, {'traced' if traced else 'not traced'}"
                    before = _prog_stats(tracer)
                    runs.setdefault(label, []).append(
                        _drained(tracer, lambda: cpu_seconds(connections, cgroup)))
                    for hook, (cnt, ns) in _prog_stats(tracer).items():
                        acc = progs.setdefault(label, {}).setdefault(hook, [0, 0])
                        acc[0] += cnt - before[hook][0]
                        acc[1] += ns - before[hook][1]
            finally:
                tracer.set_attached(False)
    off = statistics.median(runs["off"])
    print(f"{connections} connections, {rounds} interleaved rounds; CPU s, median")
    for label, values in runs.items():
        median = statistics.median(values)
        extra = (median - off) * 1e9 / connections
        print(f"{label:20s} {median:.3f}  {extra:+7.0f} ns/connection  "
              f"runs {[round(v, 3) for v in values]}", flush=True)
        for hook, (cnt, ns) in progs.get(label, {}).items():
            if ns:  # stats on
                print(f"{'':22s}{hook:40s} {cnt / connections / rounds:6.2f} runs/connection "
                      f"{ns / max(cnt, 1):7.1f} ns/run", flush=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--stats"]
    main(int(args[0]) if args else 20_000, int(args[1]) if len(args) > 1 else 7,
         "--stats" in sys.argv)
