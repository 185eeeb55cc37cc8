"""``python -m bench.trace.agentcost [TREE ...]``: what the request split costs the node
agent per waypoint flow, in instructions (callgrind), for each source tree given (a
``git worktree`` of another commit, say; default: this one).

Every waypoint request becomes one L7 record that the agent reads from its intake socket
(``read_batch``), builds into a flow (``L7FlowBuilder``) and counts into its metrics
(``FlowMetrics.observe``). With the split on, the record carries its timing marks in the
batch's column, and the agent computes the split and its histograms: that work is part of
what tracing costs, on the same cores as the waypoint in the lab. This runs that path
in-process under callgrind for a batch of 256 records, split on and off, twice each (10 and
30 batches) so that start-up cancels out: instructions per flow = the difference / 20
batches / 256. Repeatable run to run (no sockets, no clock), so it resolves changes of a
few hundred instructions. No root, no lab. The collector is set as the agent sets it
(``agent.kube.gcpause.tune``, when the tree has it): its young collections are part of
the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BATCH = 256
SHORT, LONG = 10, 30  # batches per run: their difference is the per-flow cost


def per_flow(short_total: int, long_total: int, batch: int = BATCH) -> float:
    """Instructions per flow from two runs that differ only in how many batches they did."""
    return (long_total - short_total) / ((LONG - SHORT) * batch)


def callgrind_total(text: str) -> int:
    """The instruction count in a callgrind dump's ``summary:`` (or ``totals:``) line."""
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError("no summary or totals line in the callgrind dump")


def workload(timed: bool, batches: int) -> None:
    """The agent's path for ``batches`` batch lines of ``BATCH`` waypoint records (run in
    the tree under test: imports are that tree's)."""
    from agent.flows.l7record import encode_batch, join_column, pack_lean, read_batch

    try:  # the builder's own module since session 17; trees before it: l7record's
        from agent.flows.l7flow import L7FlowBuilder
    except ImportError:
        from agent.flows.l7record import L7FlowBuilder  # type: ignore[attr-defined,no-redef]
    from agent.metrics.flowmetrics import FlowMetrics

    try:  # the agent's collector setting (``agent/daemon.py``), in trees that have one
        from agent.kube.gcpause import tune
    except ImportError:
        pass
    else:
        tune()

    records, marks = [], []
    for i in range(BATCH):
        start = 1_700_000_000_000 + i * 100_000
        records.append((1_733_400_000_000_000_000 + i, 95_000, 200, "GET",
                        "http://10.96.200.11:80/", "HTTP/1.1", "bench/routed",
                        "bench/routed/rule/0", "bench/target:80", "",
                        ("10.244.1.2", 40_000 + i % 32), ("10.96.200.11", 80), "",
                        True if timed else None, None))
        if timed:  # a pooled connection's marks: 30 µs in, 40 µs upstream, RTTs 60/55 µs
            marks.append(pack_lean(60, start, start + 30_000, start + 70_000, 55))
    line = encode_batch(records, join_column(marks) if timed else None)  # type: ignore[arg-type]
    cut = line.index(b"\n") + 1
    head, column = line[:cut], line[cut:]
    builder, metrics = L7FlowBuilder("node1"), FlowMetrics()
    for _ in range(batches + 1):  # +1: the first admits the series, caches fill
        for flow in [builder.flow(r) for r in read_batch(json.loads(head), column)]:  # type: ignore[arg-type]
            metrics.observe(flow)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("trees", nargs="*", type=Path, default=[Path.cwd()])
    args = p.parse_args(argv)
    report = {}
    with tempfile.TemporaryDirectory(prefix="tulle-agentcost-") as tmp:
        for tree in args.trees:
            tree = tree.resolve()
            side = {}
            for timed in (False, True):
                totals = [measure(tree, timed, n, Path(tmp)) for n in (SHORT, LONG)]
                side["on" if timed else "off"] = round(per_flow(*totals))
            side["split"] = side["on"] - side["off"]
            report[str(tree)] = side
            print(f"{tree}: per flow off {side['off']:,}  on {side['on']:,}  "
                  f"split +{side['split']:,} instructions", flush=True)
    print(json.dumps(report, indent=1))
    return 0


def callgrind(tree: Path, call: str, out: Path) -> int:
    """Instructions of ``call`` (Python, run with this directory on sys.path: a bench
    module's own workload, so that trees from before the bench can be measured) under
    callgrind, importing ``tree``'s agent."""
    here = Path(__file__).resolve().parent
    # A fixed hash seed: the same dict and set layouts in every run, so that the two runs'
    # difference is the workload's alone.
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONHASHSEED": "0"}
    code = f"import sys; sys.path.append({str(here)!r}); {call}"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                    sys.executable, "-c", code], env=env, cwd=tree, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return callgrind_total(out.read_text())


def measure(tree: Path, timed: bool, batches: int, work: Path) -> int:
    """Instructions of one run of `workload` under callgrind, importing ``tree``'s agent."""
    return callgrind(tree, f"from agentcost import workload; workload({timed}, {batches})",
                     work / f"{tree.name}-{'on' if timed else 'off'}-{batches}.out")


if __name__ == "__main__":
    sys.exit(main())
