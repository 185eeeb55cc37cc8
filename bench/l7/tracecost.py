"""``sudo python -m bench.l7.tracecost``: what the agents' kernel tracer costs in the kernel
per request, for the waypoint's traffic and for plain L4 keep-alive traffic.

bench-trace's lab (bench/trace/overhead.py: nginx on node2, wrk in a client pod on node1, a
Service `routed` whose HTTPRoute goes through node1's waypoint), tracing on. The kernel's
own BPF statistics (``kernel.bpf_stats_enabled``, restored afterwards) give each program's
run count and run time; the tracer's programs are the tracepoint and raw tracepoint
programs whose fds the lab's agents hold (``/proc/PID/fdinfo``), names and counters from
``BPF_OBJ_GET_INFO_BY_FD`` through libbpf. One wrk run per workload; the programs' deltas
over it are divided by wrk's requests. Needs root and the lab lock; a second or two of wrk
per workload is enough (counts, not rates).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

_TRACE_TYPES = {5: "tracepoint", 17: "raw_tracepoint"}
_INFO_SIZE = 232  # struct bpf_prog_info up to attach_btf_id (uapi linux/bpf.h)
_TYPE, _ID, _NAME, _XLATED = 0, 4, 64, 20
_RUN_TIME_NS, _RUN_CNT = 192, 200
STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def prog_ids(pids: list[int]) -> set[int]:
    """The ids of the BPF programs whose fds ``pids`` hold."""
    ids: set[int] = set()
    for pid in pids:
        for info in Path(f"/proc/{pid}/fdinfo").glob("*"):
            try:
                text = info.read_text()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
    return ids


def prog_info(lib: Any, prog_id: int) -> dict[str, Any] | None:
    fd = lib.bpf_prog_get_fd_by_id(prog_id)
    if fd < 0:
        return None
    try:
        buf = ctypes.create_string_buffer(_INFO_SIZE)
        size = ctypes.c_uint32(_INFO_SIZE)
        if lib.bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(size)) != 0:
            return None
        raw = buf.raw
        u32 = lambda at: int.from_bytes(raw[at:at + 4], "little")  # noqa: E731
        u64 = lambda at: int.from_bytes(raw[at:at + 8], "little")  # noqa: E731
        return {"id": u32(_ID), "type": u32(_TYPE),
                "name": raw[_NAME:_NAME + 16].split(b"\0")[0].decode(),
                "insns": u32(_XLATED) // 8, "run_time_ns": u64(_RUN_TIME_NS),
                "run_cnt": u64(_RUN_CNT)}
    finally:
        os.close(fd)


def snapshot(lib: Any, ids: set[int]) -> dict[int, dict[str, Any]]:
    found = {}
    for i in ids:
        info = prog_info(lib, i)
        if info is not None and info["type"] in _TRACE_TYPES:
            found[i] = info
    return found


def diff(before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]],
         requests: int) -> list[dict[str, Any]]:
    rows = []
    for i, a in sorted(after.items()):
        b = before.get(i, {"run_cnt": 0, "run_time_ns": 0})
        runs, ns = a["run_cnt"] - b["run_cnt"], a["run_time_ns"] - b["run_time_ns"]
        rows.append({"id": i, "type": _TRACE_TYPES[a["type"]], "name": a["name"],
                     "insns": a["insns"], "runs": runs, "ns": ns,
                     "ns_per_run": round(ns / runs, 1) if runs else None,
                     "runs_per_request": round(runs / requests, 3),
                     "ns_per_request": round(ns / requests, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench.l4 import manifests
    from bench.l4.labs import BenchLab
    from bench.l4.runner import BenchConfig, Runner
    from bench.trace.overhead import ROUTED_URL, TARGET_URL, TraceBench, routed_objects

    parser = argparse.ArgumentParser(prog="python -m bench.l7.tracecost", description=__doc__)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
    lib.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
    lib.bpf_obj_get_info_by_fd.argtypes = [ctypes.c_int, ctypes.c_void_p,
                                           ctypes.POINTER(ctypes.c_uint32)]
    name = "tracecost"
    progress = lambda m: print(f"[tracecost] {m}", file=sys.stderr, flush=True)  # noqa: E731
    lab = BenchLab(name, True, progress)
    runner = Runner(BenchConfig(seconds=args.seconds, threads=2, connections=32), progress)
    stats_before = STATS.read_text().strip()
    report: dict[str, Any] = {"workloads": {}}
    try:
        lab.up()
        runner.deploy(lab)
        lab.apply([manifests.target_service(), *routed_objects()])
        runner.wait_answering(lab, TARGET_URL, "the target ClusterIP")
        runner.wait_answering(lab, ROUTED_URL, "the routed Service (waypoint)")
        TraceBench(args.seconds, 1, progress).check_tracing(lab)  # hooks attached
        agents = [pid for role, pid in lab.process_pids().items() if role.startswith("agent")]
        ids = prog_ids(agents)
        STATS.write_text("1\n")
        for workload, url in (("waypoint", ROUTED_URL), ("l4_keepalive", TARGET_URL)):
            runner.wrk(lab, url, 1, close=False)  # warm-up
            before = snapshot(lib, ids)
            result = runner.wrk(lab, url, args.seconds, close=False)
            after = snapshot(lib, ids)
            rows = diff(before, after, result.requests)
            total = sum(r["ns"] for r in rows)
            report["workloads"][workload] = {
                "requests": result.requests, "rps": result.rps, "programs": rows,
                "ns_per_request": round(total / result.requests, 1)}
            progress(f"{workload}: {result.requests:,} requests, tracer "
                     f"{total / result.requests:,.0f} ns of kernel time per request")
            for r in rows:
                progress(f"  {r['type']:<15} {r['name']:<16} id {r['id']:>5}: "
                         f"{r['runs_per_request']:>6} runs/request, {r['ns_per_run']} ns/run")
    finally:
        STATS.write_text(stats_before + "\n")
        lab.down()
        shutil.rmtree(Path(tempfile.gettempdir()) / name, ignore_errors=True)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
