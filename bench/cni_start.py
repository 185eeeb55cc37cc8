"""tulle-cni's start-to-exit time per command (the runtime execs it once per pod operation).

Runs the plugin as a runtime does (a new interpreter each time) and reports the median and
p90 wall time over ``--runs`` for: the bare interpreter (``-c pass``, the floor), VERSION,
DEL (state files only), and, as root, ADD and CHECK against a veth pair in two namespaces
this script makes and removes (``attachTimeout`` 0: the agent's wait is not measured).

    sudo .venv/bin/python -m bench.cni_start [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": ""}],
    "ips": [{"address": "10.199.8.2/24", "interface": 0}],
}


def timed(argv: list[str], env: dict[str, str], stdin: bytes, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, env=env, input=stdin, capture_output=True)
        out.append(time.perf_counter() - t0)
        if proc.returncode:
            raise SystemExit(f"{argv} failed: {proc.stdout!r} {proc.stderr!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    opts = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="tulle-cni-bench-"))
    conf = {
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": "tulle-cni",
        "stateDir": str(state),
        "attachTimeout": 0,
        "prevResult": PREV,
    }
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO),
        "CNI_CONTAINERID": "bench1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/usr/lib/cni",
        "CNI_NETNS": "",
    }
    plugin = [sys.executable, "-m", "cni"]
    rows = {
        "python -c pass": timed([sys.executable, "-c", "pass"], env, b"", opts.runs),
        "VERSION": timed(plugin, {**env, "CNI_COMMAND": "VERSION"}, b"{}", opts.runs),
        "DEL": timed(plugin, {**env, "CNI_COMMAND": "DEL"}, json.dumps(conf).encode(), opts.runs),
    }
    if os.geteuid() == 0:
        host, pod = (
            f"tulle-bench-cni{secrets.token_hex(2)}",
            f"tulle-bench-cnip{secrets.token_hex(2)}",
        )
        try:
            for ns in (host, pod):
                subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(
                [
                    "ip",
                    "-n",
                    host,
                    "link",
                    "add",
                    "vbench",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    pod,
                ],
                check=True,
            )
            ns_env = {**env, "CNI_NETNS": f"/run/netns/{pod}"}
            in_host = ["ip", "netns", "exec", host, *plugin]
            stdin = json.dumps(conf).encode()
            rows["ip netns exec: python -c pass"] = timed(
                ["ip", "netns", "exec", host, sys.executable, "-c", "pass"], env, b"", opts.runs
            )
            rows["ip netns exec: ADD"] = timed(
                in_host, {**ns_env, "CNI_COMMAND": "ADD"}, stdin, opts.runs
            )
            rows["ip netns exec: CHECK"] = timed(
                in_host, {**ns_env, "CNI_COMMAND": "CHECK"}, stdin, opts.runs
            )
        finally:
            for ns in (host, pod):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for name, times in rows.items():
        p90 = statistics.quantiles(times, n=10)[-1]
        print(
            f"{name:32s} median {statistics.median(times) * 1e3:6.1f} ms  "
            f"p90 {p90 * 1e3:6.1f} ms  (n={len(times)})"
        )
    for p in sorted(state.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    state.rmdir()


if __name__ == "__main__":
    main()
