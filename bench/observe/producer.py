"""The synthetic flow-event producer: a process of its own, pinned to one core, that runs the
datapath's `tulle_from_pod` program with BPF_PROG_TEST_RUN on a packet that makes it emit
exactly one flow event per run (a DROP: see `workload.spoofed_packet`).

    python -m bench.observe.producer --prog /sys/fs/bpf/.../bench_from_pod --packet HEX \\
        --cpu 0 --seconds 10 [--rate 200000] [--chunk 200000]

Protocol with the consumer: prints ``ready`` once set up, waits for a line on stdin, runs for
``--seconds``, then prints one JSON object ``{"produced", "start", "end", "calls"}`` (times on
CLOCK_MONOTONIC, comparable across processes). ``--rate 0`` (default) runs flat out, in calls of
``--chunk`` runs each; a rate paces calls of ``--chunk`` runs to that many events per second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from agent.datapath.bpf_loader import open_pinned
from agent.datapath.testrun import TC_ACT_SHOT, SkBuff, test_run

IFINDEX = 1  # lo stands in for the pod's veth, as in tests/bpf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.observe.producer")
    p.add_argument("--prog", type=Path, required=True, help="pinned tc program")
    p.add_argument("--packet", required=True, help="the packet, hex")
    p.add_argument("--cpu", type=int, default=0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=0.0, help="events/s; 0: flat out")
    p.add_argument("--chunk", type=int, default=200_000, help="runs per test-run call")
    args = p.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    fd = open_pinned(args.prog)
    data = bytes.fromhex(args.packet)
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    print("ready", flush=True)
    sys.stdin.readline()
    produced = calls = 0
    start = time.monotonic()
    deadline = start + args.seconds
    period = args.chunk / args.rate if args.rate > 0 else 0.0
    next_call = start
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if period and now < next_call:
            time.sleep(min(next_call - now, deadline - now))
            continue
        result = test_run(fd, data, repeat=args.chunk, ctx=ctx)
        if result.retval != TC_ACT_SHOT:
            print(json.dumps({"error": f"verdict {result.retval}, expected TC_ACT_SHOT"}))
            return 1
        produced += args.chunk
        calls += 1
        next_call += period
    end = time.monotonic()
    os.close(fd)
    print(json.dumps({"produced": produced, "start": start, "end": end, "calls": calls}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
