"""`tulle identity`: the workload certificates each node holds (SPIFFE ID, serial, not-after)
and the trust bundle it trusts, read from the lab nodes' agent health reports (where
`tulle lab status` reads them: ``<lab state>/health/agent-<node>.json``), which the agent
writes every second from its SVID manager (agent.svid.manager ``report``).

``node_identities`` reads them; ``render_text`` and ``render_json`` print them (pure).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import click

from agent.cli.context import lab_name
from lab import labstatus
from lab.components import agent_health
from lab.state import LabPaths, read_json


@dataclass(frozen=True)
class NodeIdentities:
    """One node's section: ``state`` is ``ok``, ``no-report`` (no health report),
    ``stale`` (its last report is old), ``off`` (the agent runs without --ca-address) or
    ``error`` (its SVID manager did not start: ``error`` says why)."""

    node: str
    state: str
    report_age_s: float | None = None
    ca_address: str | None = None
    svids: list[dict[str, Any]] = field(default_factory=list)
    trust_bundle: dict[str, Any] | None = None
    svid_failures: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def from_report(node: str, report: Mapping[str, Any] | None, now: float) -> NodeIdentities:
    """A node's section from its health report (None: no report)."""
    if not report:
        return NodeIdentities(node, "no-report")
    age = round(max(0.0, now - float(report.get("time", 0))), 1)
    if "svids" not in report:
        error = report.get("svid_error")
        return NodeIdentities(node, "error" if error else "off", age, error=error)
    state = "stale" if age > labstatus.HEALTH_STALE_SECONDS else "ok"
    return NodeIdentities(
        node,
        state,
        age,
        report.get("ca_address"),
        list(report.get("svids") or []),
        report.get("trust_bundle"),
        list(report.get("svid_failures") or []),
    )


def node_identities(name: str) -> list[NodeIdentities] | None:
    """Every node of lab ``name``, in the lab's order; None when the lab is not up."""
    paths = LabPaths.for_lab(name)
    plan = labstatus.load_plan(paths)
    if plan is None:
        return None
    now = time.time()
    return [
        from_report(n.name, read_json(agent_health(paths, n.name)), now)
        for n in plan.nodes
    ]


def render_json(lab: str, nodes: Iterable[NodeIdentities]) -> str:
    return json.dumps({"lab": lab, "nodes": [asdict(n) for n in nodes]}, indent=2)


def _short(fingerprint: str) -> str:
    return fingerprint[:16] if fingerprint else "-"


def render_text(nodes: Iterable[NodeIdentities]) -> str:
    lines: list[str] = []
    for n in nodes:
        head = f"NODE {n.node}"
        if n.state == "no-report":
            lines += [f"{head}: no health report from its agent", ""]
            continue
        if n.state == "off":
            lines += [f"{head}: SVIDs off (the agent runs without --ca-address)", ""]
            continue
        if n.state == "error":
            lines += [f"{head}: SVIDs off, the SVID manager did not start: {n.error}", ""]
            continue
        stale = f", STALE: last report {n.report_age_s:.0f}s ago" if n.state == "stale" else ""
        lines.append(f"{head}  (CA {n.ca_address}{stale})")
        if n.svids:
            lines.append(f"  {'SPIFFE ID':50} {'SERIAL':34} {'NOT AFTER':26} ROOT")
            for s in n.svids:
                lines.append(
                    f"  {s.get('spiffe_id', ''):50} {s.get('serial', ''):34} "
                    f"{s.get('not_after', ''):26} {_short(s.get('root', ''))}"
                )
        else:
            lines.append("  no certificates held")
        for f in n.svid_failures:
            lines.append(
                f"  FAILING {f.get('spiffe_id')}: {f.get('reason')} "
                f"({f.get('failures')} in a row), next try {f.get('retry_at')}"
            )
        bundle = n.trust_bundle or {}
        roots = bundle.get("roots") or []
        lines.append(f"  trust bundle {bundle.get('trust_domain', '?')}: {len(roots)} root(s)")
        for r in roots:
            lines.append(
                f"    {_short(r.get('fingerprint', ''))}  not after "
                f"{r.get('not_after', '')}  {r.get('subject', '')}"
            )
        if bundle.get("error"):
            lines.append(f"    PROBLEM (the last good bundle is kept): {bundle['error']}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


@click.command("identity")
@click.option("--lab", "lab", default=None, help="Lab to read (default: tulle --lab, else 'lab').")
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def identity(ctx: click.Context, lab: str | None, output: str) -> None:
    """The workload certificates each node holds (SPIFFE ID, serial, not-after) and the
    trust bundle, from the lab agents' health reports."""
    name = lab or lab_name(ctx)
    nodes = node_identities(name)
    if nodes is None:
        click.echo(f"lab {name!r} is not up (start it with `tulle lab up`)", err=True)
        sys.exit(1)
    click.echo(render_json(name, nodes) if output == "json" else render_text(nodes))
