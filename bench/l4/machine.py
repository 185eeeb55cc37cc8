"""Facts about the machine that bound the numbers: cores, kernel, tool versions, other load."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.l4.labs import cpu_seconds

REQUIRED_TOOLS = {
    "wrk": "wrk",
    "nginx": "nginx-light (or nginx)",
    "iptables-restore": "iptables",
    "curl": "curl",
    "ip": "iproute2",
}


def missing_tools() -> list[str]:
    """Debian packages to install for the tools that are not on PATH."""
    return [pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool) is None]


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def busy_processes(seconds: float = 2.0, min_share: float = 0.05,
                   exclude: set[int] | None = None) -> list[dict[str, Any]]:
    """Processes using more than `min_share` of a core over `seconds`: other work on the
    machine competes with wrk and nginx for the same cores."""
    own = {os.getpid(), *(exclude or set())}
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    before = {pid: cpu_seconds(pid) for pid in pids if pid not in own}
    time.sleep(seconds)
    busy = []
    for pid, start in before.items():
        share = (cpu_seconds(pid) - start) / seconds
        if share >= min_share:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            busy.append({"pid": pid, "cores": round(share, 2), "cmd": cmd.strip()[:120]})
    return sorted(busy, key=lambda p: -float(p["cores"]))


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [0] state, [1] ppid, [6] flags, [11] utime,
    [12] stime."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


PF_KTHREAD = 0x00200000
TICK = os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU used by user processes outside the benchmark's labs (and outside this process):
    other work on the machine that competes with wrk and nginx during a run. Kernel threads
    are left out, since softirq work for the labs' own traffic runs in them."""

    def __init__(self, own_netns: set[int], own_pids: set[int]) -> None:
        self.own_netns = own_netns
        self.own_pids = {os.getpid(), *own_pids}
        self._start: dict[int, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[int, float]:
        me = os.getpid()
        out = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            fields = _stat_fields(pid)
            if fields is None or pid in self.own_pids or int(fields[1]) == me:
                continue  # ourselves and our children (`tulle lab exec`, `ip netns exec`)
            if int(fields[6]) & PF_KTHREAD:
                continue
            try:
                if (entry / "ns" / "net").stat().st_ino in self.own_netns:
                    continue
            except OSError:
                continue
            out[pid] = (int(fields[11]) + int(fields[12])) / TICK
        return out

    def start(self) -> None:
        self._start = self._sample()
        self._t0 = time.monotonic()

    def cores(self) -> float:
        """Cores used by others since `start` (new processes count from zero)."""
        elapsed = max(time.monotonic() - self._t0, 1e-6)
        now = self._sample()
        used = sum(v - self._start.get(pid, 0.0) for pid, v in now.items())
        return round(max(used, 0.0) / elapsed, 2)


def facts(iptables_restore: str) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "wrk": _first_line(["wrk", "--version"]).split(" Copyright")[0],
        "nginx": _first_line(["nginx", "-v"]),
        "iptables": _first_line([iptables_restore, "--version"]),
        "loadavg_start": loadavg(),
    }
