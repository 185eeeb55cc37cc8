"""Agent start to datapath ready, compiling vs adopting the pinned programs (compile cache).

Each round starts two fresh processes that do what the agent does up to a loaded datapath
(``import agent.daemon``, then ``load_datapath`` with a state dir): one after removing the
compile record (BCC compiles, pins the programs, records them), one with the record in place
(adopts, no BCC). Rounds alternate the two, so both see the same machine load. Each process
reports its age (process start to datapath ready), its CPU time (user + system), its peak
RSS (VmHWM), whether it adopted and whether BCC was imported.

    sudo .venv/bin/python -m bench.control.compilecache [--rounds 5]

Root: pins under /sys/fs/bpf/tulle/ccbench-PID/, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.datapath.templates import RECORD_NAME

REPO = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, os, resource, sys
from pathlib import Path
import agent.daemon  # what the agent imports before it loads the datapath
from agent.datapath.programs import load_datapath
from agent.procfs import seconds_since, start_ticks

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

before = cpu()
dp = load_datapath(Path(sys.argv[1]), state_dir=Path(sys.argv[2]))
ready = seconds_since(start_ticks() or 0)
load_cpu = cpu() - before
usage = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print(json.dumps({"ready_s": ready, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "load_cpu_s": load_cpu,
                  "hwm_mb": int(hwm.split()[1]) / 1024, "adopted": not dp.compiled,
                  "bcc": "bcc" in sys.modules, "load": os.getloadavg()[0]}))
dp.close()
"""


def run_once(pin: Path, state: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(pin), str(state)], cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                         text=True, check=True, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pin = Path(f"/sys/fs/bpf/tulle/ccbench-{os.getpid()}/n1")
    state = Path(tempfile.mkdtemp(prefix="tulle-ccbench-"))
    runs: dict[str, list[dict[str, Any]]] = {"compile": [], "adopt": []}
    try:
        for _ in range(args.rounds):
            (state / RECORD_NAME).unlink(missing_ok=True)
            runs["compile"].append(run_once(pin, state))
            runs["adopt"].append(run_once(pin, state))
    finally:
        shutil.rmtree(pin.parent, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    print("| start | adopted | BCC imported | ready s (median) | CPU s (median) | of which "
          "load_datapath | VmHWM MB (median) | load avg (1 min, range) |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in ("ready_s", "cpu_s",
                                                                      "load_cpu_s", "hwm_mb")}
        loads = [r["load"] for r in results]
        print(f"| {mode} | {sorted({r['adopted'] for r in results})} | "
              f"{sorted({r['bcc'] for r in results})} | {med['ready_s']:.2f} | "
              f"{med['cpu_s']:.2f} | {med['load_cpu_s']:.3f} | {med['hwm_mb']:.1f} | "
              f"{min(loads):.1f}-{max(loads):.1f} |")
    print("\nall runs:", json.dumps(runs))


if __name__ == "__main__":
    main()
