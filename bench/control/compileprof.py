"""What the datapath's BCC compile and verifier load cost, piece by piece, in one process (no
agent, no API server: the other core idle). Root; maps pinned under a throw-away pin dir.

    flock /tmp/tulle-root.lock env PYTHONPATH=$PWD .venv/bin/python -m bench.control.compileprof
        [--reps 3] [--variants serial,parallel-verify,split]

Variants (each ``--reps`` times, wall and CPU of the calling thread; with threads, the
process's CPU):
- ``serial``: the agent's way, one module (from_pod.c + to_pod.c), then both verifier loads;
- ``parallel-verify``: one module, the two verifier loads on two threads at once;
- ``split``: each source its own module, one after the other (the fixed cost twice);
- ``parallel-split``: each source its own module, compiled and loaded on two threads at once.
  Not in the default set: it crashed the process (a segfault in BCC, 2026-12-05), leaving
  its pins under /sys/fs/bpf/tulle/compileprof-PID to remove by hand.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.datapath.programs import FROM_POD, PROGRAM_SOURCES, TO_POD


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measured(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    wall, cpu, pcpu = time.monotonic(), time.thread_time(), _process_cpu()
    out = fn()
    return out, {"wall_s": round(time.monotonic() - wall, 3),
                 "cpu_s": round(time.thread_time() - cpu, 3),
                 "process_cpu_s": round(_process_cpu() - pcpu, 3)}


def _compile(sources: list[Path], pin_dir: Path) -> Any:
    from agent.datapath.bpf_loader import load_program

    pin_dir.mkdir(parents=True, exist_ok=True)
    return load_program(sources, [f'-DTULLE_PIN_DIR="{pin_dir}"'])


def _load(bpf: Any, name: str) -> dict[str, Any]:
    from agent.datapath.bpf_loader import BPF, load_fn
    from agent.datapath.bpfinfo import prog_info

    fn, cost = measured(lambda: load_fn(bpf, name, BPF.SCHED_CLS))
    return {**cost, "tag": prog_info(fn.fd).tag}


def _threads(*jobs: Callable[[], Any]) -> list[Any]:
    out: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        out[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def variant(name: str, base: Path) -> dict[str, Any]:
    both = list(PROGRAM_SOURCES)
    start_wall, start_cpu = time.monotonic(), _process_cpu()
    row: dict[str, Any] = {"variant": name}
    if name in ("serial", "parallel-verify"):
        bpf, row["compile"] = measured(lambda: _compile(both, base / "one"))
        if name == "serial":
            row[FROM_POD], row[TO_POD] = _load(bpf, FROM_POD), _load(bpf, TO_POD)
        else:
            row[FROM_POD], row[TO_POD] = _threads(lambda: _load(bpf, FROM_POD),
                                                  lambda: _load(bpf, TO_POD))
        bpf.cleanup()
    else:
        def one(src: Path, prog: str) -> dict[str, Any]:
            bpf, cost = measured(lambda: _compile([src], base / prog))
            loaded = _load(bpf, prog)
            bpf.cleanup()
            return {"compile": cost, **loaded}

        jobs = [lambda s=src, p=prog: one(s, p) for src, prog in zip(both, (FROM_POD, TO_POD),
                                                                    strict=True)]
        results = _threads(*jobs) if name == "parallel-split" else [job() for job in jobs]
        row[FROM_POD], row[TO_POD] = results
    row["total_wall_s"] = round(time.monotonic() - start_wall, 3)
    row["total_process_cpu_s"] = round(_process_cpu() - start_cpu, 3)
    shutil.rmtree(base, ignore_errors=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--variants", default="serial,parallel-verify,split")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = Path(f"/sys/fs/bpf/tulle/compileprof-{__import__('os').getpid()}")
    rows: list[dict[str, Any]] = []
    _, cost = measured(lambda: __import__("bcc"))
    rows.append({"variant": "import bcc", **cost})
    try:
        for rep in range(args.reps):
            for name in args.variants.split(","):
                row = variant(name, root / f"{name}-{rep}")
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
