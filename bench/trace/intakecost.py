"""What the agent's L7 intake costs per waypoint record, request split on vs off (no lab).

    PYTHONPATH=$PWD .venv/bin/python -m bench.trace.intakecost [--records 256] [--batches 400]
        [--rounds 5] [--only on|off]

Builds batches shaped like the waypoint workload's (bench/trace: one client pod to the
`routed` Service, a pooled upstream connection, ``FlowRecorder``'s 256 records a batch) as
the waypoint's `FlowForwarder` encodes them: with the split on, field 13 ``true`` and each
request's `pack_lean` marks in the batch's column; off, field 13 null and no column. Then
feeds the lines through the agent's real path: `L7Intake.accept` (JSON, `read_batch`,
`L7FlowBuilder.flow`, `enrich` against an `EndpointIndex` naming both pods and the Service)
into a `FlowIngest` whose observer is a `FlowMetrics` and whose ring is a `FlowRing`, as
agent/daemon.py wires them. Prints CPU µs per record (``time.process_time``, best of
``--rounds``, on and off alternating in the same minutes) and on minus off. ``--only`` feeds
one state's batches ``--repeat`` times and prints nothing else: for ``valgrind
--tool=callgrind`` (instructions per record: the difference of two ``--repeat`` counts'
totals over the records it adds; bench/trace/intakecost.sh).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from agent.flows.enrich import EndpointIndex, enrich
from agent.flows.ingest import FlowIngest
from agent.flows.l7intake import L7Intake
from agent.flows.l7record import L7Record, encode_batch, join_column, pack_lean
from agent.flows.store import FlowRing
from agent.metrics.flowmetrics import FlowMetrics

CLIENT = "10.244.1.10"
SERVER = "10.244.2.10"
VIP = "10.96.200.11"
NODE = "node1"


def index() -> EndpointIndex:
    pods = [{"ip": CLIENT, "namespace": "bench", "name": "client", "labels": {"app": "client"},
             "workload": {"kind": "Deployment", "name": "client"}, "node": "node1"},
            {"ip": SERVER, "namespace": "bench", "name": "backend-1",
             "labels": {"app": "backend"}, "workload": {"kind": "Deployment", "name": "backend"},
             "node": "node2"}]
    services = [{"cluster_ip": VIP, "port": 80, "namespace": "bench", "name": "routed"}]
    return EndpointIndex.build(pods=pods, services=services,
                               nodes=[{"ip": "172.30.0.1", "name": NODE}], local_node=NODE)


def batch(n: int, timed: bool, seq: int = 0) -> tuple[bytes, bytes]:
    """One batch line and its column (b"" when not ``timed``), as `FlowForwarder` sends."""
    records: list[L7Record] = []
    marks: list[bytes] = []
    t0 = 1_700_000_000_000_000_000 + seq * n * 100_000
    for i in range(n):
        start = 10_000_000_000 + (seq * n + i) * 100_000
        latency = 180_000 + (i * 7919) % 90_000
        records.append((t0 + i * 100_000, latency, 200, "GET", "/", "HTTP/1.1", "bench/routed",
                        "0", "bench/target:80", "", (CLIENT, 40_000 + i % 32), (VIP, 80), "",
                        True if timed else None, None))
        if timed:
            sent = start + 20_000 + i % 5_000
            marks.append(pack_lean(40 + i % 30, start, sent, sent + 120_000 + (i * 31) % 60_000,
                                   60 + i % 40))
    column = join_column(marks) if timed else b""
    payload = encode_batch(records, column or None)
    line_end = payload.index(b"\n") + 1
    return payload[:line_end], payload[line_end:]


class Agent:
    """The agent's intake, ingest, ring and metrics, wired as agent/daemon.py does."""

    def __init__(self, directory: Path, ring: int = 65_535) -> None:
        idx = index()
        self.metrics = FlowMetrics()
        self.ingest = FlowIngest(FlowRing(ring), (self.metrics,))
        self.intake = L7Intake(directory / "l7.sock", self.ingest,
                               lambda f: enrich(f, idx, NODE), NODE)

    def feed(self, lines: list[tuple[bytes, bytes]]) -> None:
        accept = self.intake.accept
        for line, column in lines:
            accept(line, column)

    def close(self) -> None:
        self.intake.stop()


def cpu_per_record(agent: Agent, lines: list[tuple[bytes, bytes]], records: int) -> float:
    gc.collect()
    t0 = time.process_time()
    agent.feed(lines)
    return (time.process_time() - t0) / records * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="intakecost", description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=256, help="records per batch (default 256)")
    p.add_argument("--batches", type=int, default=400, help="batches per round (default 400)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per state (default 5)")
    p.add_argument("--only", choices=("on", "off"), help="one state only, no timing")
    p.add_argument("--repeat", type=int, default=1, help="with --only: feeds (default 1)")
    p.add_argument("--ring", type=int, default=65_535,
                   help="flow ring capacity (default the agent's, 65,535)")
    args = p.parse_args(argv)
    states = {"on": True, "off": False}
    with tempfile.TemporaryDirectory(prefix="intakecost-") as tmp:
        agent = Agent(Path(tmp), args.ring)
        try:
            feeds = {name: [batch(args.records, timed, s) for s in range(args.batches)]
                     for name, timed in states.items() if args.only in (None, name)}
            if args.only:
                for _ in range(args.repeat):
                    agent.feed(feeds[args.only])
                return 0
            for lines in feeds.values():  # warm the caches (series, IP pairs, endpoints)
                agent.feed(lines[:4])
            best = {name: float("inf") for name in feeds}
            total = args.records * args.batches
            for _ in range(args.rounds):
                for name, lines in feeds.items():
                    best[name] = min(best[name], cpu_per_record(agent, lines, total))
            assert agent.intake.rejected == 0, "the benchmark's records were rejected"
        finally:
            agent.close()
    print(f"{total:,} records per round, best of {args.rounds} (CPU µs per record):")
    for name in feeds:
        print(f"  split {name:3} {best[name]:7.3f}")
    print(f"  on - off  {best['on'] - best['off']:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

