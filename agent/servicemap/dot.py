"""Graphviz rendering of a service map: `to_dot` (pure) and `render` (runs ``dot``).

Workloads are rounded boxes, services ellipses, world/host and other collapsed peers
octagons; nodes sit in one dashed cluster per namespace. Every edge is labelled with its
rate, error rate and p99, drawn thicker with more traffic, orange when it saw errors and
red when 5% or more failed; or, with ``color_by="latency-part"``, in the colour of the part
where most of its requests' time went (client network, waypoint, upstream connect,
upstream network, backend), with that share in its label.

`render` needs Graphviz's ``dot`` binary (Debian package ``graphviz``, installed by
``make setup``).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import defaultdict

from agent.servicemap.graph import SPLIT_PARTS, Edge, ServiceGraph
from agent.servicemap.peers import ADDRESS, RESERVED, SERVICE, WORKLOAD, Peer
from agent.servicemap.text import (
    COLOR_BY,
    PART_NAMES,
    error_color,
    format_error_rate,
    format_latency,
    format_rate,
    format_window,
    part_text,
)

FORMATS = ("svg", "png")
COLORS = {"red": "#d32f2f", "yellow": "#ef8c00", None: "#5b6b7f"}
PART_COLORS = {"client_network": "#1f77b4", "proxy": "#9467bd", "upstream_connect": "#e6a100",
               "upstream_network": "#17becf", "backend": "#2ca02c"}
_NODE_STYLE = {
    WORKLOAD: 'shape=box, style="rounded,filled", fillcolor="#dbe9f6", color="#4a78a8"',
    SERVICE: 'shape=ellipse, style=filled, fillcolor="#fdebc8", color="#b7862b"',
    RESERVED: 'shape=doubleoctagon, style=filled, fillcolor="#eeeeee", color="#777777"',
    ADDRESS: 'shape=note, style=filled, fillcolor="#f5f5f5", color="#999999"',
}


_COLOR_WORDS = {"client_network": "blue", "proxy": "purple", "upstream_connect": "amber",
                "upstream_network": "cyan", "backend": "green"}


class RenderError(Exception):
    """Graphviz is missing or failed; the message says what to do."""


def quote(text: str) -> str:
    """A DOT double-quoted string; "\\n" in `text` stays a line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _node_label(peer: Peer) -> str:
    if peer.kind == WORKLOAD:
        return f"{peer.name}\n{peer.detail}" if peer.detail else peer.name
    if peer.kind == SERVICE:
        return f"{peer.name}\nService"
    return peer.name


def edge_label(edge: Edge, by_part: bool = False) -> str:
    lines = [format_rate(edge), f"err {format_error_rate(edge)}"]
    if edge.p99_ns is not None:
        lines.append(f"p99 {format_latency(edge.p99_ns)}")
    if by_part and edge.dominant_part is not None:
        lines.append(f"time: {part_text(edge)}")
    if edge.drop_reasons and not edge.is_l7:
        lines.append(f"dropped: {edge.drop_reasons[0][0]}")
    return "\n".join(lines)


def _penwidth(edge: Edge) -> float:
    return round(1.0 + min(4.0, math.log10(1.0 + 10.0 * edge.rate)), 2)


def _edge_color(edge: Edge, by_part: bool) -> str:
    if not by_part:
        return COLORS[error_color(edge)]
    top = edge.dominant_part
    return PART_COLORS[top[0]] if top is not None else COLORS[None]


def to_dot(graph: ServiceGraph, title: str | None = None, color_by: str = "errors") -> str:
    if color_by not in COLOR_BY:
        raise ValueError(f"unknown colouring {color_by!r} (known: {', '.join(COLOR_BY)})")
    by_part = color_by == "latency-part"
    heading = title or (f"tulle map: last {format_window(graph.window_s)}, "
                        f"{graph.flows:,} flows")
    if by_part:
        heading += ("\nedges coloured by where most request time went: "
                    + ", ".join(f"{PART_NAMES[p]} ({_COLOR_WORDS[p]})" for p in SPLIT_PARTS)
                    + "; grey: no split")
    else:
        heading += "\nedges: rate, error rate, p99 (orange: errors, red: 5% or more)"
    out = [
        "digraph tulle_map {",
        f"  graph [rankdir=LR, fontname=Helvetica, fontsize=16, labelloc=t, "
        f"label={quote(heading)}, nodesep=0.5, ranksep=1.1, pad=0.3];",
        "  node [fontname=Helvetica, fontsize=12, margin=\"0.2,0.08\"];",
        "  edge [fontname=Helvetica, fontsize=10, arrowsize=0.8];",
    ]
    by_ns: dict[str, list[Peer]] = defaultdict(list)
    for node in graph.nodes:
        by_ns[node.namespace].append(node)

    def node_line(peer: Peer, indent: str) -> str:
        return (f"{indent}{quote(peer.id)} [label={quote(_node_label(peer))}, "
                f"{_NODE_STYLE[peer.kind]}];")

    for ns in sorted(by_ns):
        if not ns:
            continue
        out.append(f"  subgraph {quote('cluster_' + ns)} {{")
        out.append(f"    label={quote('namespace ' + ns)}; style=\"rounded,dashed\"; "
                   "color=\"#8a94a6\"; fontcolor=\"#4a5568\"; fontsize=13;")
        out.extend(node_line(p, "    ") for p in by_ns[ns])
        out.append("  }")
    out.extend(node_line(p, "  ") for p in by_ns.get("", []))
    for e in graph.edges:
        color = _edge_color(e, by_part)
        label = quote(edge_label(e, by_part))
        out.append(
            f"  {quote(e.source)} -> {quote(e.destination)} [label={label}, "
            f"color={quote(color)}, fontcolor={quote(color)}, penwidth={_penwidth(e)}];"
        )
    out.append("}")
    return "\n".join(out) + "\n"


def dot_binary() -> str | None:
    return shutil.which("dot")


def render(dot_source: str, fmt: str, timeout: float = 120.0) -> bytes:
    """Lay out and draw `dot_source` as "svg" or "png" with Graphviz's ``dot``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r} (known: {', '.join(FORMATS)})")
    binary = dot_binary()
    if binary is None:
        raise RenderError(
            "Graphviz's `dot` is not installed, so the map cannot be drawn as "
            f"{fmt.upper()}. Install it with `make setup` (or `apt-get install graphviz`), "
            "or use -o text or -o dot."
        )
    try:
        proc = subprocess.run([binary, f"-T{fmt}"], input=dot_source.encode(),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"`dot` did not finish within {timeout:g}s") from None
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise RenderError(f"`dot -T{fmt}` failed: {err}")
    return proc.stdout
