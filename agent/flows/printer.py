"""Flow output formats of `tulle observe`, matching Hubble's: compact, json, dict, table.

The ``format_*`` functions are pure (flow in, text out) and carry the golden tests; the
printer classes only write their output, keep table alignment, and route lost-event and
node-status records (to stderr, except in json output where they are lines of their own).

Compact, one line per flow, reply flows with the arrow flipped::

    Nov 22 10:00:00.123: shop/web-1:43512 (ID:12345) -> shop/echo-2:8080 (ID:23456) \
to-endpoint FORWARDED (TCP Flags: SYN)

An encrypted flow (``IP.encrypted``: it rode an mTLS tunnel) has `ENCRYPTED_MARK` after its
verdict in every text format ("FORWARDED 🔒"); Hubble's CLI prints none.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from agent.flows.codec import envelope, lost_event_to_json
from agent.flows.flow import TCP, UDP, Endpoint, Flow, LostEvent, Service, summarize
from agent.flows.names import (
    DROP_REASONS,
    EVENT_DROP,
    EVENT_POLICY_VERDICT,
    EVENT_TRACE,
    EVENT_TRACE_SOCK,
    POLICY_MATCH_TYPES,
    RESERVED_IDENTITIES,
    TRACE_POINT_BY_ENUM,
    TRACE_POINTS,
    drop_reason_text,
)
from agent.flows.policyjson import policy_names_suffix
from agent.flows.timefmt import DEFAULT_TIME_FORMAT, format_time_as

OUTPUTS = ("compact", "json", "dict", "table")
# Hubble's other spellings: ``jsonpb`` is the GetFlowsResponse object per line, which is
# what ``json`` prints here; ``tab`` is the table.
OUTPUT_ALIASES = {"jsonpb": "json", "tab": "table"}

ENCRYPTED_MARK = "🔒"  # two terminal columns wide: `_width` counts it so
_COLORS = {"host": "36", "identity": "35", "green": "32", "red": "31", "yellow": "33"}


def _paint(text: str, color: str | None, enabled: bool) -> str:
    if not enabled or color is None:
        return text
    return f"\x1b[{_COLORS[color]}m{text}\x1b[0m"


def format_timestamp(ns: int, layout: str = DEFAULT_TIME_FORMAT) -> str:
    """Go's time.StampMilli in UTC ("Jan _2 15:04:05.000") or another of Hubble's
    ``--time-format`` layouts, or N/A for no time."""
    return format_time_as(ns, layout)


def _join_host_port(host: str, port: int) -> str:
    if not port:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _hostname(ip: str, port: int, ep: Endpoint | None, svc: Service | None) -> str:
    ns = ep.namespace if ep is not None else ""
    pod = ep.pod_name if ep is not None else ""
    if svc is not None:
        ns = svc.namespace or ns
    if pod:
        host = f"{ns}/{pod}" if ns else pod
    elif svc is not None and svc.name:
        host = f"{ns}/{svc.name}" if ns else svc.name
    else:
        host = ip
    return _join_host_port(host, port)


def hostnames(flow: Flow) -> tuple[str, str]:
    """SOURCE and DESTINATION columns: "ns/pod:port", "ns/service:port" or "ip:port"."""
    if flow.ip is None:
        return "", ""
    sport = dport = 0
    if isinstance(flow.l4, TCP | UDP):
        sport, dport = flow.l4.source_port, flow.l4.destination_port
    return (
        _hostname(flow.ip.source, sport, flow.source, flow.source_service),
        _hostname(flow.ip.destination, dport, flow.destination, flow.destination_service),
    )


def format_identity(identity: int) -> str:
    if identity in RESERVED_IDENTITIES:
        return f"({RESERVED_IDENTITIES[identity]})"
    return "(unknown)" if identity == 0 else f"(ID:{identity})"


def flow_type(flow: Flow) -> str:
    """The TYPE column: "to-endpoint", "Policy denied", "http-request", "policy-verdict:…"."""
    if flow.l7 is not None:
        proto = "http" if flow.l7.http is not None else "l7"
        return f"{proto}-{flow.l7.type.lower()}"
    ev = flow.event_type
    if ev is not None and ev.type == EVENT_TRACE:
        if ev.sub_type in TRACE_POINTS:
            return TRACE_POINTS[ev.sub_type][0]
        return str(ev.sub_type)
    if ev is not None and ev.type == EVENT_DROP:
        name = DROP_REASONS.get(ev.sub_type) or flow.drop_reason_desc
        return drop_reason_text(name)
    if ev is not None and ev.type == EVENT_POLICY_VERDICT:
        match = POLICY_MATCH_TYPES.get(flow.policy_match_type, str(flow.policy_match_type))
        return f"policy-verdict:{match} {flow.traffic_direction}"
    if ev is not None and ev.type == EVENT_TRACE_SOCK:
        return "trace-sock"
    if ev is None and flow.trace_observation_point in TRACE_POINT_BY_ENUM:
        return TRACE_POINTS[TRACE_POINT_BY_ENUM[flow.trace_observation_point]][0]
    if ev is None and flow.drop_reason_desc:
        return drop_reason_text(flow.drop_reason_desc)
    return "UNKNOWN"


def verdict_text(flow: Flow, color: bool = False, policy_names: bool = False) -> str:
    """The VERDICT column; with ``policy_names`` (``--print-policy-names``) followed by
    " BY name (Kind), …" where the flow names the policies behind its verdict (Tulle's NEW
    flows are its policy verdicts, so they carry them too)."""
    text = _verdict_text(flow, color, policy_names)
    if flow.ip is not None and flow.ip.encrypted:
        return f"{text} {ENCRYPTED_MARK}"
    return text


def _verdict_text(flow: Flow, color: bool, policy_names: bool) -> str:
    verdict = str(flow.verdict)
    policy = flow.event_type is not None and flow.event_type.type == EVENT_POLICY_VERDICT
    by = policy_names_suffix(flow) if policy_names else ""
    if verdict in ("FORWARDED", "REDIRECTED"):
        return _paint(("ALLOWED" if policy else verdict) + by, "green", color)
    if verdict in ("DROPPED", "ERROR"):
        return _paint(("DENIED" if policy else verdict) + by, "red", color)
    if verdict == "AUDIT":
        return _paint(("AUDITED" if policy else verdict) + by, "yellow", color)
    if verdict in ("TRACED", "TRANSLATED"):
        return _paint(verdict, "yellow", color)
    return verdict


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def format_duration(ns: int) -> str:
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:.2f}s"
    if ns >= 1_000_000:
        return f"{ns // 1_000_000}ms"
    return f"{ns // 1_000}µs"


def summary_text(flow: Flow) -> str:
    """Hubble's summary, then what only Tulle knows (bytes, duration, route, drop site)."""
    parts = [summarize(flow)]
    t = flow.tulle
    if t is not None:
        if t.bytes_sent or t.bytes_received:
            traffic = f"{_size(t.bytes_sent)} sent, {_size(t.bytes_received)} received"
            if t.duration_ns:
                traffic += f" in {format_duration(t.duration_ns)}"
            parts.append(traffic)
        elif t.duration_ns:
            parts.append(f"duration {format_duration(t.duration_ns)}")
        if t.route:
            parts.append(f"route {t.route}" + (f" rule {t.rule}" if t.rule else ""))
        elif t.rule:
            parts.append(f"rule {t.rule}")
        if t.backend:
            parts.append(f"backend {t.backend}")
        if t.drop_file:
            parts.append(f"dropped at {t.drop_file}:{t.drop_line}")
        if t.tunnel is not None and t.tunnel.peer:
            parts.append(f"peer waypoint {t.tunnel.peer}")
        if t.peer_spiffe_id:
            parts.append(f"peer presented {t.peer_spiffe_id}")
        if t.tunnel is not None and t.tunnel.detail:
            parts.append(t.tunnel.detail)
    return "; ".join(p for p in parts if p)


def format_compact(flow: Flow, *, color: bool = False, node_name: bool = False,
                   time_format: str = DEFAULT_TIME_FORMAT, policy_names: bool = False) -> str:
    src, dst = hostnames(flow)
    src_id = format_identity(flow.source.identity if flow.source else 0)
    dst_id = format_identity(flow.destination.identity if flow.destination else 0)
    arrow = "->"
    if flow.is_reply is None:
        arrow = "<>"
    elif flow.is_reply:
        src, dst, src_id, dst_id, arrow = dst, src, dst_id, src_id, "<-"
    node = f" [{flow.node_name}]" if node_name else ""
    return (
        f"{format_timestamp(flow.time, time_format)}{node}: "
        f"{_paint(src, 'host', color)} {_paint(src_id, 'identity', color)} {arrow} "
        f"{_paint(dst, 'host', color)} {_paint(dst_id, 'identity', color)} "
        f"{flow_type(flow)} {verdict_text(flow, color, policy_names)} ({summary_text(flow)})"
    )


def format_dict(flow: Flow, *, color: bool = False, node_name: bool = False,
                time_format: str = DEFAULT_TIME_FORMAT, policy_names: bool = False) -> str:
    src, dst = hostnames(flow)
    lines = [f"  TIMESTAMP: {format_timestamp(flow.time, time_format)}"]
    if node_name:
        lines.append(f"       NODE: {flow.node_name}")
    lines += [
        f"     SOURCE: {_paint(src, 'host', color)}",
        f"DESTINATION: {_paint(dst, 'host', color)}",
        f"       TYPE: {flow_type(flow)}",
        f"    VERDICT: {verdict_text(flow, color, policy_names)}",
        f"    SUMMARY: {summary_text(flow)}",
    ]
    return "\n".join(lines)


TABLE_HEADER = ("TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY")


def table_row(flow: Flow, *, node_name: bool = False, time_format: str = DEFAULT_TIME_FORMAT,
              policy_names: bool = False) -> list[str]:
    src, dst = hostnames(flow)
    row = [format_timestamp(flow.time, time_format)]
    if node_name:
        row.append(flow.node_name)
    verdict = verdict_text(flow, policy_names=policy_names)
    return row + [src, dst, flow_type(flow), verdict, summary_text(flow)]


def format_table(
    rows: Sequence[Sequence[str]], *, node_name: bool = False, header: bool = True
) -> str:
    """Rows under Hubble's header, aligned as Go's tabwriter(minwidth 2, padding 3) does."""
    head = list(TABLE_HEADER)
    if node_name:
        head.insert(1, "NODE")
    table = [head, *[list(r) for r in rows]]
    widths = [max(2, max(_width(r[i]) for r in table)) + 3 for i in range(len(head) - 1)]
    return "\n".join(
        "".join(cell + " " * (w - _width(cell)) for cell, w in zip(r[:-1], widths, strict=True))
        + r[-1]
        for r in (table if header else table[1:])
    )


def _width(cell: str) -> int:
    """Terminal columns of a cell: the mark is a wide character."""
    return len(cell) + cell.count(ENCRYPTED_MARK)


def format_lost(ev: LostEvent) -> str:
    cpu = f" CPU({ev.cpu})" if ev.cpu is not None else ""
    return f"EVENTS LOST: {ev.source}{cpu} {ev.num_events_lost}"


class FlowPrinter:
    """Writes flows in one output format; call `close()` at the end (flushes tables)."""

    def __init__(
        self,
        output: str = "compact",
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        color: bool = False,
        node_name: bool = False,
        time_format: str = DEFAULT_TIME_FORMAT,
        policy_names: bool = False,
    ) -> None:
        import sys

        output = OUTPUT_ALIASES.get(output, output)
        format_time_as(1, time_format)  # refuses an unknown layout now, not per flow
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r} (choose {', '.join(OUTPUTS)})")
        self.output = output
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.color = color and output in ("compact", "dict")  # tables cannot align colour
        self.node_name = node_name
        self.time_format = time_format
        self.policy_names = policy_names
        self._rows: list[list[str]] = []
        self._count = 0
        self._header = False  # table header written

    def flow(self, flow: Flow) -> None:
        if self.output == "json":
            self.out.write(json.dumps(envelope(flow), separators=(",", ":")) + "\n")
        elif self.output == "compact":
            self.out.write(format_compact(flow, color=self.color, node_name=self.node_name,
                                          time_format=self.time_format,
                                          policy_names=self.policy_names) + "\n")
        elif self.output == "dict":
            if self._count:
                self.out.write("------------\n")
            self.out.write(format_dict(flow, color=self.color, node_name=self.node_name,
                                       time_format=self.time_format,
                                       policy_names=self.policy_names) + "\n")
        else:
            self._rows.append(table_row(flow, node_name=self.node_name,
                                        time_format=self.time_format,
                                        policy_names=self.policy_names))
        self._count += 1

    def lost(self, ev: LostEvent) -> None:
        if self.output == "json":
            self.out.write(json.dumps(lost_event_to_json(ev), separators=(",", ":")) + "\n")
        else:
            self.err.write(format_lost(ev) + "\n")

    def node_status(self, state: str, nodes: Sequence[str], message: str, time_ns: int) -> None:
        """Report unavailable or failing nodes (stderr); connected-node notices are quiet."""
        prefix = f"{format_timestamp(time_ns, self.time_format)}"
        names = ", ".join(nodes)
        if state == "NODE_UNAVAILABLE":
            text = f"{prefix}: {len(nodes)} nodes are unavailable: {names}"
        elif state == "NODE_ERROR":
            text = f"{prefix}: Error {message!r} on {len(nodes)} nodes: {names}"
        else:
            return
        if message and state == "NODE_UNAVAILABLE":
            text += f" ({message})"
        self.err.write(text + "\n")

    def flush(self) -> None:
        """Write buffered table rows (follow mode calls this between batches)."""
        if self._rows:
            text = format_table(self._rows, node_name=self.node_name, header=not self._header)
            self.out.write(text + "\n")
            self._rows = []
            self._header = True
        self.out.flush()

    def close(self) -> None:
        self.flush()
