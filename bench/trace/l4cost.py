"""``python -m bench.trace.l4cost [TREE ...]``: what kernel tracing costs the node agents
per new L4 connection, in instructions (callgrind), for each source tree given (a checkout
of another commit, say: ``git archive <commit> | tar -x -C /tmp/x``; default: this one).

Every connection of `make bench-trace`'s L4 new-connection workload (wrk in a client pod on
node1, nginx on node2, through a ClusterIP) ends in two close records: the client's, which
node1's agent reads, and the server's, which node2's reads. This runs both agents' path for
them in-process: each agent's real `TraceFeed.step` over a `Tracer` whose ring hands out a
batch of ``BATCH`` raw records (bytes of ``struct trace_record``, laid out by this tree's
``bpf/lib/conn_trace.h``), into a real `FlowRing` and `FlowMetrics` wired as
``agent/daemon.py`` wires them, with an index naming both pods and the Service. Two runs per
stage (SHORT and LONG batches, one more first to fill caches): instructions per connection
= the difference / (LONG - SHORT) / BATCH, so start-up cancels out. Stages, cumulative:

- ``read``: draining the ring (the tree's ``Tracer.read``, or ``read_raw`` where it has one);
- ``store``: the whole step with no metrics observer (translation, enrichment, the store);
- ``full``: the whole step as the agent runs it (plus metrics);
- ``observed``: ``full`` and then every stored flow read back, as `tulle observe` following
  every flow would (the lean intake builds flows only then).

Repeatable run to run (no sockets, no clock, no kernel), no root, no lab. The collector is
set as the agent sets it (``agent.kube.gcpause.tune``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.trace.agentcost import callgrind

BATCH = 1024  # connections per drain: one DRAIN_INTERVAL_S (0.2 s) at ~5k/s per agent
SHORT, LONG = 2, 6
STAGES = ("read", "store", "full", "observed")
HERE = Path(__file__).resolve().parent
CLIENT, SERVER, VIP = "10.244.1.2", "10.244.2.3", "10.96.100.10"


def per_connection(short_total: int, long_total: int, batch: int = BATCH) -> float:
    """Instructions per connection from two runs that differ only in their batch count."""
    return (long_total - short_total) / ((LONG - SHORT) * batch)


def _layout() -> Any:
    """``struct trace_record`` from the C header of the tree this file is in (trees before
    ``cdefs`` read arrays cannot parse it themselves)."""
    tree = HERE.parents[1]
    spec = importlib.util.spec_from_file_location("l4cost_cdefs", tree / "agent/datapath/cdefs.py")
    assert spec is not None and spec.loader is not None
    cdefs = sys.modules["l4cost_cdefs"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cdefs)
    return cdefs.struct_type(tree / "bpf/lib/conn_trace.h", "trace_record")


def _be32(ip: str) -> int:
    import socket
    import struct

    return int(struct.unpack("<I", socket.inet_aton(ip))[0])


def close_records(layout: Any, role: int, batch: int) -> list[bytes]:
    """`batch` close records of one side of the workload's connections: a few RTT samples,
    no retransmits, ~1 ms lifetimes, distinct ephemeral ports."""
    out = []
    client = role == 1
    for i in range(batch):
        rec = layout()
        start = 5_000_000_000 + i * 100_000
        rec.kind, rec.role, rec.protocol, rec.last_state = 1, role, 6, 4 if client else 9
        rec.time_ns, rec.start_ns = start + 1_000_000, start
        rec.established_ns = start + (60_000 if client else 0)
        rec.conn_id = 1_000_000 + i * 2 + role
        rec.srtt_sum_us, rec.srtt_samples = 150, 3
        rec.srtt_min_us, rec.srtt_max_us, rec.srtt_last_us, rec.srtt_first_us = 40, 60, 50, 45
        port = 32_768 + i % 28_000
        here, there = (CLIENT, SERVER) if client else (SERVER, CLIENT)
        rec.saddr, rec.daddr, rec.pod_ip = _be32(here), _be32(there), _be32(here)
        rec.sport, rec.dport = (port, 80) if client else (80, port)
        rec.netns = 4026532000 + role
        out.append(bytes(rec))
    return out


class _Ring:
    def __init__(self, batch: list[bytes]) -> None:
        self.batch = batch

    def read(self, _limit: int) -> list[bytes]:
        return list(self.batch)


def workload(stage: str, batches: int, batch: int = BATCH) -> None:
    """Both agents' path for ``batches`` drains of `batch` connections (run in the tree
    under test: imports are that tree's). Each agent's node has its one pod, which the
    feed hands the tracer every drain as the agent does (`local_pod_ips`)."""
    from agent.flows.enrich import EndpointIndex
    from agent.flows.ingest import FlowIngest
    from agent.flows.store import FlowRing
    from agent.metrics import FlowMetrics
    from agent.tracing.feed import TraceFeed
    from agent.tracing.tracer import Tracer

    try:
        from agent.kube.gcpause import tune
    except ImportError:
        pass
    else:
        tune()
    layout = _layout()
    pods = [{"ip": CLIENT, "namespace": "bench", "name": "client-0", "labels": {"app": "client"},
             "workload": {"kind": "Deployment", "name": "client"}, "node": "node1"},
            {"ip": SERVER, "namespace": "bench", "name": "target-0", "labels": {"app": "target"},
             "workload": {"kind": "Deployment", "name": "target"}, "node": "node2"}]
    services = [{"cluster_ip": VIP, "port": 80, "namespace": "bench", "name": "target"}]
    nodes = [{"ip": "172.30.0.2", "name": "node1"}, {"ip": "172.30.0.3", "name": "node2"}]
    agents = []
    for node, role in (("node1", 1), ("node2", 2)):
        tracer: Any = object.__new__(Tracer)
        tracer.layout, tracer.record_size = layout, len(bytes(layout()))
        tracer.ring = _Ring(close_records(layout, role, batch))
        pod = CLIENT if role == 1 else SERVER
        tracer.local, tracer.lost = {pod}, lambda: 0  # as set_local left it
        index = EndpointIndex.build(pods, services, nodes, local_node=node)
        ring = FlowRing(65_535)
        observers = () if stage in ("read", "store") else (FlowMetrics(),)
        feed = TraceFeed(tracer, FlowIngest(ring, observers), lambda i=index: i,
                         lambda p=pod: [p], node, reasons={}, symbols=lambda _a: "")
        agents.append((tracer, feed, ring))
    read = getattr(Tracer, "read_raw", Tracer.read)
    for _ in range(batches + 1):  # +1: the first fills the caches and admits the series
        for tracer, feed, ring in agents:
            if stage == "read":
                read(tracer)
                continue
            feed.step()
            if stage == "observed":
                records, _ = ring.snapshot()
                for _flow in records[-batch:]:
                    pass


def measure(tree: Path, stage: str, batches: int, work: Path, batch: int = BATCH) -> int:
    """Instructions of one run of `workload` under callgrind, importing ``tree``'s agent."""
    return callgrind(tree, f"from l4cost import workload; workload({stage!r}, {batches}, {batch})",
                     work / f"{tree.name}-{stage}-{batches}-{batch}.out")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="*", type=Path, default=[Path.cwd()])
    p.add_argument("--stages", default=",".join(STAGES))
    p.add_argument("--batch", type=int, default=BATCH,
                   help=f"connections per drain (default {BATCH}); a smaller one shows the "
                        "per-drain fixed cost")
    args = p.parse_args(argv)
    report: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="tulle-l4cost-") as tmp:
        for tree in args.trees:
            tree = tree.resolve()
            side = {}
            for stage in args.stages.split(","):
                totals = [measure(tree, stage, n, Path(tmp), args.batch) for n in (SHORT, LONG)]
                side[stage] = round(per_connection(*totals, args.batch))
                print(f"{tree}: {stage} {side[stage]:,} instructions per connection",
                      flush=True)
            report[str(tree)] = side
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
