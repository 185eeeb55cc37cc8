"""Both nodes' waypoints as the benchmark watches them: CPU from /proc and py-spy profiles.

PIDs come from the lab's process records (`BenchLab.process_pids`, roles `waypoint-node1`
and `waypoint-node2`); a waypoint with worker processes is counted with all of them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.l4.labs import cpu_seconds
from bench.mtls.stats import cpu_per_krps
from bench.observe.pyspy import top_frames
from lab import components

NODES = ("node1", "node2")


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (from /proc/*/stat's ppid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


@dataclass(frozen=True)
class Snapshot:
    pid: int | None
    cpu_s: float


def snapshot(pids: Mapping[str, int]) -> dict[str, Snapshot]:
    """utime + stime of each node's waypoint tree now."""
    out = {}
    for node in NODES:
        pid = pids.get(components.role("waypoint", node))
        cpu = sum(cpu_seconds(p) for p in process_tree(pid)) if pid is not None else 0.0
        out[node] = Snapshot(pid, cpu)
    return out


def cpu_used(
    before: Mapping[str, Snapshot], after: Mapping[str, Snapshot], requests: int
) -> dict[str, Any]:
    """CPU-seconds per waypoint over a run and vCPU per 1,000 requests/s; None for a
    waypoint that was missing or restarted during the run (its counters started over)."""
    used: dict[str, float | None] = {}
    for node in NODES:
        b, a = before[node], after[node]
        same = b.pid is not None and b.pid == a.pid and a.cpu_s >= b.cpu_s
        used[node] = round(a.cpu_s - b.cpu_s, 3) if same else None
    return {
        "waypoint_cpu_s": used,
        "vcpu_per_krps": {
            n: round(cpu_per_krps(u, requests), 4) if u is not None and requests > 0 else None
            for n, u in used.items()
        },
    }


# Leaf frames of a thread that waits: the event loop in its selector, and the helper threads
# (the Kubernetes watches over blocking TLS sockets, queues) in blocking calls.
IDLE_LEAVES = (
    "select (selectors.py",
    "SSLSocket.read (ssl.py",
    "SSLSocket.recv_into (ssl.py",
    "SocketIO.readinto (socket.py",
    "wait (threading.py",
    "_wait_for_tstate_lock (threading.py",
)


def split_idle(raw: str) -> tuple[float, str]:
    """py-spy's raw stacks -> (% of samples waiting, the other stacks). With --nonblocking
    py-spy cannot tell idle threads apart, so a waypoint at 1,000 requests/s is mostly in
    `select` and its helper threads in blocking reads; the rest is where its CPU goes."""
    idle = total = 0
    busy = []
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        if any(leaf in stack.rsplit(";", 1)[-1] for leaf in IDLE_LEAVES):
            idle += int(count)
        else:
            busy.append(line)
    return (round(100 * idle / total, 1) if total else 0.0), "\n".join(busy)


def profile(
    pids: Mapping[str, int], workdir: Path, label: str, seconds: int, load: Callable[[], None]
) -> dict[str, Any]:
    """py-spy (raw, non-blocking: the waypoint is never stopped, 200 Hz) on both waypoints
    while `load` runs; per node, the share of samples waiting and, of the other samples,
    the frames with the most self time."""
    pyspy = Path(sys.executable).with_name("py-spy")
    spies = {}
    for node in NODES:
        out = workdir / f"profile-{label}-{node}.txt"
        pid = str(pids[components.role("waypoint", node)])
        argv = [str(pyspy), "record", "--pid", pid, "-d", str(seconds), "-r", "200",
                "-f", "raw", "--nonblocking", "-o", str(out)]  # fmt: skip
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        spies[node] = (out, spy)
    load()
    result: dict[str, Any] = {}
    for node, (out, spy) in spies.items():
        _, err = spy.communicate(timeout=seconds + 60)
        if spy.returncode != 0 or not out.exists():
            result[node] = {"error": f"py-spy failed ({spy.returncode}): {err.strip()[-300:]}"}
            continue
        idle_pct, busy = split_idle(out.read_text())
        frames, samples = top_frames(busy, 8)
        top = [[f.name, f.self_pct, f.total_pct] for f in frames]
        result[node] = {"samples": samples, "idle_pct": idle_pct, "top_self": top}
    return result
