"""`tulle trace connect|rtt|retrans|drops|request`: the kernel connection tracer's events
and the waypoint's per-request time split, live or from the flows the agents keep, with
`observe`'s selectors.

Each verb is `observe` narrowed to one kind of event (the server filters): close records of
traced TCP connections (connect, rtt, retrans), kernel drops, or L7 requests (request).
``--histogram`` prints log2 histograms per workload pair instead of lines (after ``-f`` is
interrupted, when following).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

import click

from agent.cli.observe import (
    ObserveCommand,
    _query,
    _unreachable,
    filter_options,
    server_address,
    server_options,
)
from agent.flows.filters import EventTypeFilter, FlowFilter
from agent.flows.flow import Flow
from agent.flows.names import EVENT_DROP, EVENT_L7, EVENT_TRACE_SOCK
from agent.observer.client import ObserverClient, ObserverRequestError, ObserverUnavailable
from agent.observer.convert import FlowsQuery
from agent.tracing import heatmap, tracefmt

# What the server narrows each verb to (AND-ed with every allow-list filter the flags made).
VERB_FILTERS: dict[str, dict[str, Any]] = {
    "connect": {"event_type": (EventTypeFilter(EVENT_TRACE_SOCK),)},
    "rtt": {"event_type": (EventTypeFilter(EVENT_TRACE_SOCK),), "tcp_rtt_over": ("0ns",)},
    "retrans": {"event_type": (EventTypeFilter(EVENT_TRACE_SOCK),), "tcp_retransmits": ("1",)},
    # Kernel drops carry sub type 0; the datapath's own drops carry their Tulle reason.
    "drops": {"event_type": (EventTypeFilter(EVENT_DROP, 0),), "verdict": ("DROPPED",)},
    # The waypoint's L7 flows: each carries where its request's time went (tulle.request).
    "request": {"event_type": (EventTypeFilter(EVENT_L7),)},
}
HELP = {
    "connect": "Connect latency of traced TCP connections (client) and handshake RTT (server).",
    "rtt": "Smoothed RTT (min/mean/max/last) of traced TCP connections, at close.",
    "retrans": "Traced TCP connections that retransmitted, with the count.",
    "drops": "Packets the kernel dropped for local pods, with the kernel's reason.",
    "request": "Where each L7 request's time went: client network, waypoint, upstream "
               "connect, upstream network and backend (the parts add up to the total).",
}


def narrow(query: FlowsQuery, verb: str) -> FlowsQuery:
    """`query` with the verb's filter AND-ed into each allow-list filter. Pure."""
    extra = VERB_FILTERS[verb]
    allow = query.whitelist or (FlowFilter(),)
    return dataclasses.replace(
        query, whitelist=tuple(dataclasses.replace(ff, **extra) for ff in allow)
    )


def _flows(events: Iterable[Any], verb: str) -> Iterable[Flow]:
    noted = False
    for ev in events:
        if not isinstance(ev, Flow):
            continue
        if tracefmt.wanted(verb, ev):
            yield ev
        elif verb == "request" and not noted and tracefmt.unsplit_request(ev):
            noted = True  # say why once, on stderr (stdout stays one object per line)
            click.echo(tracefmt.SPLIT_OFF_NOTE, err=True)


def _write_png(verb: str, flows: Iterable[Flow], path: str) -> None:
    """Draw the heatmap of every flow (until ^C when following) into `path`."""
    kept: list[Flow] = []
    try:
        kept.extend(flows)
    except KeyboardInterrupt:
        pass
    try:
        png = heatmap.draw(verb, kept)
    except heatmap.HeatmapError as e:
        raise click.ClickException(f"--png {path}: {e}; nothing written") from None
    try:
        with open(path, "wb") as out:
            out.write(png)
    except OSError as e:
        raise click.ClickException(f"--png {path}: cannot write it: {e.strerror}") from None
    click.echo(f"wrote {path} ({len(kept)} {verb} events)", err=True)


def _emit(verb: str, flows: Iterable[Flow], output: str, histogram: bool,
          png: str | None = None) -> None:
    if png is not None:
        _write_png(verb, flows, png)
        return
    if histogram:
        kept: list[Flow] = []
        try:
            kept.extend(flows)
        except KeyboardInterrupt:
            pass
        for line in tracefmt.histograms(verb, kept) or [f"no {verb} events"]:
            click.echo(line)
        return
    for flow in flows:
        if output == "json":
            click.echo(json.dumps(tracefmt.event_json(verb, flow)))
        else:
            click.echo(tracefmt.format_line(verb, flow))
        sys.stdout.flush()


def _verb(verb: str) -> click.Command:
    @click.command(verb, cls=ObserveCommand, help=HELP[verb])
    @click.option("--last", type=click.IntRange(min=1), default=None, metavar="N",
                  help="The last N events (default 20; every stored one with --histogram).")
    @click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
    @click.option("--since", metavar="TIME", help="Events since TIME: 5m, 1h30m or RFC 3339.")
    @click.option("--until", metavar="TIME", help="Events until TIME.")
    @filter_options
    @click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
                  show_default=True, help="One line, or one JSON object, per event.")
    @click.option("--histogram", is_flag=True, help="Log2 histograms per workload pair.")
    @click.option("--png", metavar="FILE", default=None,
                  help="Draw a heatmap (time x log2 value, colour: count) into FILE.")
    @server_options
    @click.pass_context
    def command(ctx: click.Context, last: int | None, follow: bool, since: str | None,
                until: str | None, output: str, histogram: bool, png: str | None,
                server: str | None, timeout: float, **_filters: Any) -> None:
        every = (histogram or png is not None) and last is None and not follow
        query = narrow(_query(ctx, last, None, every, follow, since, until), verb)
        address = server_address(ctx, server)
        try:
            with ObserverClient(address, connect_timeout=timeout) as client:
                try:
                    _emit(verb, _flows(client.get_flows(query), verb), output, histogram, png)
                except ObserverUnavailable as e:
                    raise _unreachable(address, e.reason) from None
                except ObserverRequestError as e:
                    raise click.ClickException(f"{address} refused the request: {e}") from None
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return command


@click.group("trace")
def trace() -> None:
    """Kernel connection tracing: connect latency, RTT, retransmits and kernel drops, per
    connection of the cluster's pods (tracepoints; see `tulle status` for the hooks in use),
    and where each L7 request's time went (request)."""


for _name in tracefmt.VERBS:
    trace.add_command(_verb(_name))

