"""`tulle map`: the service dependency graph seen in the flows of a time window.

Register with ``cli.add_command(map_cmd)``. Flows come from the observer API (the relay by
default; the server is resolved exactly as `tulle observe` does) or from a file saved with
``tulle observe -o json`` (``--input-file``), and take `tulle observe`'s filter flags.

Outputs: ``-o text`` (the default, an adjacency list for terminals), ``-o dot`` (Graphviz
source), ``-o svg`` and ``-o png`` (drawn by Graphviz's ``dot``; written to
``tulle-map.svg`` / ``tulle-map.png`` unless ``--output`` says otherwise, ``-`` for stdout).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from agent.cli.observe import (
    ObserveCommand,
    _build_filters,
    _unreachable,
    _use_color,
    filter_options,
    server_address,
    server_options,
)
from agent.flows.filters import compile_filters
from agent.flows.flow import Flow
from agent.flows.replay import parse_time_arg, read_events, select_stream
from agent.observer.client import ObserverClient, ObserverRequestError, ObserverUnavailable
from agent.observer.convert import ALL, FlowsQuery, NodeStatus
from agent.servicemap import RenderError, build_graph, render, render_text, to_dot

DEFAULT_SINCE = "5m"
DEFAULT_FILES = {"png": "tulle-map.png", "svg": "tulle-map.svg"}


def _progress(message: str) -> None:
    if sys.stderr.isatty():
        click.echo(message, err=True)


def _fetch(ctx: click.Context, server: str | None, timeout: float,
           query: FlowsQuery) -> list[Flow]:
    address = server_address(ctx, server)
    _progress(f"reading flows from {address}…")
    flows: list[Flow] = []
    with ObserverClient(address, connect_timeout=timeout) as client:
        try:
            for ev in client.get_flows(query):
                if isinstance(ev, Flow):
                    flows.append(ev)
                elif isinstance(ev, NodeStatus) and ev.state != "NODE_CONNECTED":
                    nodes = ", ".join(ev.node_names) or "?"
                    click.echo(f"warning: {ev.state} {nodes}: the map misses their flows"
                               + (f" ({ev.message})" if ev.message else ""), err=True)
        except ObserverUnavailable as e:
            raise _unreachable(address, e.reason) from None
        except ObserverRequestError as e:
            raise click.ClickException(f"{address} refused the request: {e}") from None
    return flows


def _replay(stream: Any, query: FlowsQuery) -> list[Flow]:
    name = getattr(stream, "name", "<stdin>")

    def bad_line(number: int, message: str) -> None:
        click.echo(f"{name}:{number}: skipped, not a flow: {message}", err=True)

    keep = compile_filters(query.whitelist, query.blacklist)
    records = select_stream(read_events(stream, bad_line), 0, since=query.since,
                            predicate=keep)
    return [r for r in records if isinstance(r, Flow)]


def _write(data: bytes, target: str, what: str) -> None:
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        with open(target, "wb") as f:
            f.write(data)
    except OSError as e:
        raise click.ClickException(f"cannot write {target}: {e.strerror}") from None
    click.echo(f"wrote {target} ({what}, {len(data) / 1024:,.1f} KiB)", err=True)


@click.command("map", cls=ObserveCommand)
@click.option("--since", metavar="TIME", default=None,
              help=f"Window start: 5m, 1h30m or RFC 3339 (default {DEFAULT_SINCE}; with "
                   "--input-file, the whole file).")
@filter_options
@click.option("-o", "--format", "fmt", type=click.Choice(["text", "svg", "png", "dot"]),
              default="text", show_default=True, help="Output format.")
@click.option("--output", "output_file", metavar="FILE",
              help="Where to write (- for stdout). Default: stdout for text and dot, "
                   "tulle-map.svg / tulle-map.png for images.")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour the text output.")
@click.option("--color-by", type=click.Choice(["errors", "latency-part"]), default="errors",
              show_default=True,
              help="What edge colours show: error rates, or where most of the requests' time "
                   "went (client network, waypoint, upstream connect, upstream network, "
                   "backend; from the waypoint's request split).")
@click.option("--input-file", type=click.File("r"), default=None, metavar="FILE|-",
              help="Flows saved with `tulle observe -o json` instead of asking a server.")
@server_options
@click.pass_context
def map_cmd(ctx: click.Context, since: str | None, fmt: str, output_file: str | None,
            color: str, color_by: str, input_file: Any, server: str | None, timeout: float,
            **_filters: Any) -> None:
    """Draw the service dependency graph seen in the flows: workloads and services as
    nodes, edges with request rate, error rate and p99."""
    now = time.time_ns()
    if since is None and input_file is None:
        since = DEFAULT_SINCE
    try:
        since_ns = parse_time_arg(since, now) if since else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    allow, deny = _build_filters(ctx)
    query = FlowsQuery(number=ALL, whitelist=tuple(allow), blacklist=tuple(deny),
                       since=since_ns)
    if input_file is not None:
        flows = _replay(input_file, query)
        end = max((f.time for f in flows), default=now)
    else:
        flows = _fetch(ctx, server, timeout, query)
        end = now
    window = (end - since_ns) / 1e9 if since_ns is not None else None
    graph = build_graph(flows, window)

    if fmt == "text":
        text = render_text(graph, color=_use_color(color) and output_file in (None, "-"),
                           color_by=color_by)
        _write(text.encode(), output_file or "-", "text")
        return
    dot = to_dot(graph, color_by=color_by)
    if fmt == "dot":
        _write(dot.encode(), output_file or "-", "Graphviz DOT")
        return
    _progress(f"laying out {len(graph.nodes)} nodes and {len(graph.edges)} edges with dot…")
    try:
        image = render(dot, fmt)
    except RenderError as e:
        raise click.ClickException(str(e)) from None
    what = f"{fmt.upper()}, {len(graph.nodes)} nodes, {len(graph.edges)} edges"
    _write(image, output_file or DEFAULT_FILES[fmt], what)
