"""The terminal rendering of a service map: an adjacency list, grouped by caller.

::

    Service map: last 1m, 884 flows, 7 nodes, 7 edges

    world
      -> svc frontend/web              HTTP           2.00  req/s   err 5%    p99 119ms  n=120
    frontend/web (Deployment)
      -> data/db (Pod)                 TCP:5432       0.07  conn/s  err 100%  p99 -      n=4 …
      -> svc backend/catalog           HTTP,TCP:8080  5.00  req/s   err 1%    p99 30ms   n=300
    svc backend/catalog
      -> backend/catalog (Deployment)  HTTP,TCP:8080  5.00  req/s   err 1%    p99 30ms   n=300

Drops add the reasons after the count ("dropped: POLICY_DENIED 4").

Error rates are red (>= 5%) or yellow (> 0) when colour is on. With
``color_by="latency-part"`` each L7 edge also says where most of its requests' time went
("time backend 92%", from the waypoint's request split), in that part's colour.
"""

from __future__ import annotations

from agent.servicemap.graph import SPLIT_PARTS, Edge, ServiceGraph
from agent.servicemap.peers import ADDRESS, RESERVED, SERVICE, Peer

ERROR_RED = 0.05  # error rate at or above which an edge is drawn red, else yellow if > 0
COLOR_BY = ("errors", "latency-part")
PART_NAMES = {"client_network": "client net", "proxy": "waypoint",
              "upstream_connect": "connect", "upstream_network": "upstream net",
              "backend": "backend"}
_ANSI = {"red": "31", "yellow": "33", "bold": "1", "client_network": "36", "proxy": "35",
         "upstream_connect": "33", "upstream_network": "34", "backend": "32"}


def format_latency(ns: int | None) -> str:
    if ns is None:
        return "-"
    if ns < 1_000_000:
        return f"{ns / 1e3:.0f}µs"
    if ns < 10_000_000:
        return f"{ns / 1e6:.1f}ms"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.0f}ms"
    return f"{ns / 1e9:.2f}s"


def format_window(seconds: float) -> str:
    """300 -> "5m", 90 -> "1m30s", 5400 -> "1h30m", 2.5 -> "2.5s", 59.801 -> "59.8s"."""
    if seconds < 60:
        return f"{seconds:.3g}s"
    total = round(seconds)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s else ""]
    return "".join(parts)


def format_rate(edge: Edge) -> str:
    return f"{edge.rate:.2f} {edge.unit}/s"


def format_error_rate(edge: Edge) -> str:
    if not edge.errors:
        return "0%"
    pct = 100 * edge.error_rate
    return f"{pct:.0f}%" if pct >= 99.95 or pct == int(pct) else f"{pct:.1f}%"


def node_text(peer: Peer) -> str:
    if peer.kind == SERVICE:
        return f"svc {peer.label}"
    if peer.kind in (RESERVED, ADDRESS):
        return peer.label
    return f"{peer.label} ({peer.detail})" if peer.detail else peer.label


def _paint(text: str, color: str | None, enabled: bool) -> str:
    if not enabled or color is None:
        return text
    return f"\x1b[{_ANSI[color]}m{text}\x1b[0m"


def error_color(edge: Edge) -> str | None:
    rate = max(edge.error_rate, edge.connection_errors / edge.connections
               if edge.connections else 0.0)
    if rate >= ERROR_RED:
        return "red"
    return "yellow" if edge.has_errors else None


def part_text(edge: Edge) -> str:
    """Where most of the edge's request time went: "backend 92%", or "-"."""
    top = edge.dominant_part
    if top is None:
        return "-"
    return f"{PART_NAMES[top[0]]} {100 * top[1]:.0f}%"


def legend() -> str:
    return "time: " + ", ".join(PART_NAMES[p] for p in SPLIT_PARTS)


def _notes(edge: Edge) -> str:
    notes = []
    if edge.drop_reasons:
        notes.append("dropped: " + ", ".join(f"{r} {n:,}" for r, n in edge.drop_reasons[:3]))
    if edge.is_l7 and edge.connections:
        notes.append(f"{edge.connections:,} conn")
    return "  ".join(notes)


def reading_order(graph: ServiceGraph) -> list[Peer]:
    """Callers before callees: breadth-first from the entry points (nodes nothing calls,
    and the world, host…), then whatever is left (cycles), each in graph order."""
    called = {e.destination for e in graph.edges if e.destination != e.source}
    queue = [n.id for n in graph.nodes if n.id not in called or n.kind == RESERVED]
    order: list[str] = []
    seen: set[str] = set()
    pending = [n.id for n in graph.nodes]
    while queue or pending:
        if not queue:
            queue.append(next(p for p in pending if p not in seen))
        node = queue.pop(0)
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        pending = [p for p in pending if p != node]
        queue.extend(e.destination for e in graph.edges_from(node) if e.destination not in seen)
    return [graph.node(n) for n in order]


def render_text(graph: ServiceGraph, color: bool = False, color_by: str = "errors") -> str:
    if color_by not in COLOR_BY:
        raise ValueError(f"unknown colouring {color_by!r} (known: {', '.join(COLOR_BY)})")
    by_part = color_by == "latency-part"
    head = (f"Service map: last {format_window(graph.window_s)}, {graph.flows:,} flows, "
            f"{len(graph.nodes)} nodes, {len(graph.edges)} edges")
    if by_part:
        head += f"\n{legend()} (where most of each edge's request time went)"
    if not graph.edges:
        return head + "\n\nNo traffic between workloads in this window.\n"
    rows: list[tuple[str, list[str], Edge]] = []
    for node in reading_order(graph):
        for e in graph.edges_from(node.id):
            cells = [
                "-> " + node_text(graph.node(e.destination)),
                ",".join(e.protocols[:2]),
                f"{e.rate:.2f}",
                f"{e.unit}/s",
                "err " + format_error_rate(e),
                "p99 " + format_latency(e.p99_ns),
                f"n={e.count:,}",
            ]
            if by_part:
                cells.append("time " + part_text(e))
            rows.append((node.id, cells, e))
    widths = [max(len(cells[i]) for _, cells, _ in rows) for i in range(len(rows[0][1]))]
    right = {2}  # rates align right
    lines = [_paint(head, "bold", color), ""]
    current = None
    for source, cells, e in rows:
        if source != current:
            lines.append(_paint(node_text(graph.node(source)), "bold", color))
            current = source
        parts = []
        for i, cell in enumerate(cells):
            padded = cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            if i == 4 and not by_part:
                padded = _paint(padded, error_color(e), color)
            elif i == 7:
                top = e.dominant_part
                padded = _paint(padded, top[0] if top else None, color)
            parts.append(padded)
        notes = _notes(e)
        line = "  " + "  ".join(parts)
        lines.append((line + "  " + notes) if notes else line.rstrip())
    return "\n".join(lines) + "\n"
