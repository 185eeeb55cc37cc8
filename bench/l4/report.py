"""The report: a table on stdout and in bench/results/l4-<date>.{md,json} (pure rendering)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.l4.results import (
    CLEAN_CORES,
    CLOSE,
    CLUSTERIP,
    DIRECT_PLAIN,
    DIRECT_TULLE,
    IPTABLES,
    IPTABLES_NODEPORT,
    KEEPALIVE,
    PATH_TITLES,
    TULLE,
    TULLE_NODEPORT,
    Measurement,
    Ratio,
)

ROW_ORDER = (DIRECT_TULLE, DIRECT_PLAIN, TULLE, IPTABLES, TULLE_NODEPORT, IPTABLES_NODEPORT)


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _runs(m: Measurement | None) -> str:
    if m is None:
        return "n/a"
    return " / ".join(f"{r.result.rps:,.0f}" + ("" if r.clean else "*") for r in m.runs)


def _p99(m: Measurement | None) -> str:
    return "n/a" if m is None or m.best.result.p99_ms is None else f"{m.best.result.p99_ms:.2f}"


def table_rows(measurements: Sequence[Measurement]) -> list[list[str]]:
    keys = sorted({(m.path, m.services) for m in measurements},
                  key=lambda k: (ROW_ORDER.index(k[0]), k[1] or 0))
    rows = []
    for path, services in keys:
        by_mode = {m.mode: m for m in measurements if m.path == path and m.services == services}
        close, keep = by_mode.get(CLOSE), by_mode.get(KEEPALIVE)
        errors = sum(r.result.errors for m in (close, keep) if m for r in m.runs)
        others = max((r.others_cores for m in (close, keep) if m for r in m.runs), default=0.0)
        rows.append([
            PATH_TITLES[path], "-" if services is None else f"{services:,}",
            _num(close.best.result.rps) if close else "n/a", _runs(close), _p99(close),
            _num(keep.best.result.rps) if keep else "n/a", _runs(keep), _p99(keep), str(errors),
            f"{others:.2f}",
        ])
    return rows


HEADER = ["path", "services", "new conn/s (best)", "runs", "p99 ms",
          "keep-alive req/s (best)", "runs", "p99 ms", "errors", "others (cores, max)"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in rows]
    return "\n".join(lines)


def _met(r: Ratio) -> str:
    return {True: "**met**", False: "**not met**", None: "n/a"}[r.met]


def target_rows(ratios: Sequence[Ratio]) -> list[list[str]]:
    return [[r.name, _num(r.value, 3), f"{_num(r.low, 3)} – {_num(r.high, 3)}",
             f"≥ {r.target}", _met(r)] for r in ratios if r.target is not None]


def other_rows(ratios: Sequence[Ratio]) -> list[list[str]]:
    return [[r.name, _num(r.value, 3), f"{_num(r.low, 3)} – {_num(r.high, 3)}"]
            for r in ratios if r.target is None]


def sync_rows(sync: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for s in sync:
        rows.append([
            f"{s['services']:,}", f"{s.get('fillers_added', 0):,}",
            _num(s.get("fillers_apply_s"), 1),
            _num(s.get("fillers_node1_programmed_s"), 1),
            _num(s.get("fillers_node2_programmed_s"), 1),
            _num(s["target_first_ok_s"] * 1000 if "target_first_ok_s" in s else None),
            _num(s.get("node1_last_sync_ms")),
        ])
    return rows


SYNC_HEADER = ["services", "fillers added", "apply s", "node1 programmed s",
               "node2 programmed s", "target created → ClusterIP answers (ms)",
               "agent full sync (ms)"]


def _nodeport_setup(cfg: dict[str, Any]) -> str:
    return (
        " NodePort rows: wrk runs in the lab's external client (a machine outside the "
        "cluster, on the fabric) against node1's address : the target's nodePort; the backend "
        "is on node2, so both datapaths translate, SNAT to node1 (externalTrafficPolicy "
        "Cluster) and forward. Every Service of the run, fillers and target, is then type "
        "NodePort (the Service count is the NodePort Service count), which 10,000 of do not "
        "fit kube-apiserver's default range (30000-32767, 2,768 ports): the Tulle lab's API "
        f"server runs with `--service-node-port-range {cfg['node_port_range']}`, below the "
        "nodes' ephemeral ports, and the comparison lab's KUBE-NODEPORTS rules use the same "
        "ports, the target's last. The NodePort target (issue 15) is on new connections "
        "per second; keep-alive is shown too."
    )


def render_markdown(report: dict[str, Any], measurements: Sequence[Measurement],
                    ratios: Sequence[Ratio]) -> str:
    m, cfg = report["machine"], report["config"]
    out = [
        f"# L4 benchmark (`make bench-l4`), {report['date']}",
        "",
        f"Machine: {m['nproc']} vCPU ({m['cpu']}), kernel {m['kernel']}, "
        f"{m['memory_gib']} GiB; {m['wrk']}; {m['nginx']}; {m['iptables']}. "
        f"Load average at start {m['loadavg_start'][0]} / {m['loadavg_start'][1]} / "
        f"{m['loadavg_start'][2]}.",
        "",
        f"Load: wrk with {cfg['threads']} threads and {cfg['connections']} connections, "
        f"{cfg['seconds']} s per run, {cfg['repeats']} run{'s' if cfg['repeats'] != 1 else ''} "
        "per figure (best shown, all runs listed), "
        + ("from a client pod on node1 " if CLUSTERIP in cfg.get("paths", [CLUSTERIP]) else "")
        + "to nginx (1 worker) on node2. New connections use `Connection: close` (one "
        "request per TCP connection). Service counts: "
        f"{', '.join(f'{c:,}' for c in cfg['counts'])}, with the target Service last."
        + (_nodeport_setup(cfg) if cfg.get("node_port_range") else "")
        + (" **Quick smoke run: not a result.**" if cfg["quick"] else ""),
        "",
        markdown_table(HEADER, table_rows(measurements)),
        "",
        "p99 is from the best run. \"others\" is the most CPU that processes outside the "
        "benchmark (other users of this machine) took during any run of that row; runs marked "
        f"* were disturbed (others took ≥ {CLEAN_CORES} cores) and are left out of the best "
        "and of the ratios whenever a clean run of the same figure exists.",
        "",
        "## Targets (issue 3: ClusterIP; issue 15: NodePort)",
        "",
        *(["A quick smoke run: these statuses are not claims; the targets are judged on a "
           "full run on a quiet machine.", ""] if cfg["quick"] else []),
        markdown_table(["ratio", "value (best ÷ best)", "noise range (worst/best pairings)",
                        "target", "status"], target_rows(ratios)),
        "",
        "## Other ratios",
        "",
        markdown_table(["ratio", "value", "noise range"], other_rows(ratios)),
    ]
    if report["tulle_sync"]:
        out += ["", "## Tulle: propagation of Services to the datapath", "",
                markdown_table(SYNC_HEADER, sync_rows(report["tulle_sync"])), "",
                "Filler times run from the first filler `tulle apply` until each node's agent "
                "reports that many services in its BPF maps. The target time runs from the "
                "start of its `tulle apply` to the first 200 from a probe polling the ClusterIP "
                "every 20 ms (store → EndpointSlice controller → agent → maps). "
                "\"Agent full sync\" is the node1 agent's last sync duration: every change "
                "resyncs the whole desired state."]
    if report["iptables_sync"]:
        out += ["", "## iptables: rule programming", "",
                markdown_table(["services", "nat rules", "KUBE-NODEPORTS rules",
                                "iptables-restore (ms)"],
                               [[f"{s['services']:,}", f"{s['nat_rules']:,}",
                                 f"{s.get('kube_nodeports_rules', 0):,}",
                                 _num(s['restore_s'] * 1000)] for s in report["iptables_sync"]])]
    out += ["", "## What limits these numbers", ""]
    out += [f"- {line}" for line in report["limits"]]
    if report["notes"]:
        out += ["", "## Notes from the run", ""]
        out += [f"- {line}" for line in report["notes"]]
    return "\n".join(out) + "\n"


def write(report: dict[str, Any], markdown: str, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md.write_text(markdown)
    js.write_text(json.dumps(report, indent=2) + "\n")
    return md, js
