"""`tulle list namespaces`: the namespaces seen in flows, like ``hubble list namespaces``.

Hubble's observer keeps a set of namespaces seen in the last hour; Tulle's observer API has
no such call, so this asks for the flows of the window (``--since``, default 1h) and
collects the namespaces of their endpoints. The stored flows bound the cost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import click

from agent.cli.observe import _client_call, server_options
from agent.flows.flow import Flow
from agent.flows.replay import parse_time_arg, read_events
from agent.observer.convert import ALL, FlowsQuery


def namespaces_of(events: Iterable[Any], since_ns: int = 0) -> list[str]:
    """Sorted namespaces of the source and destination endpoints of the flows in `events`
    at or after `since_ns` (other events are skipped). Pure."""
    seen: set[str] = set()
    for ev in events:
        if not isinstance(ev, Flow) or ev.time < since_ns:
            continue
        for ep in (ev.source, ev.destination):
            if ep is not None and ep.namespace:
                seen.add(ep.namespace)
    return sorted(seen)


@click.command("namespaces")
@click.option("--since", default="1h", show_default=True, metavar="TIME",
              help="Namespaces of flows since TIME: 5m, 1h30m or RFC 3339.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("--input-file", type=click.File("r"), default=None, metavar="FILE|-",
              help="Read flows saved with `observe -o json` instead of asking a server.")
@server_options
@click.pass_context
def list_namespaces(ctx: click.Context, since: str, output: str, input_file: Any,
                    server: str | None, timeout: float) -> None:
    """Namespaces seen in flows (sources and destinations), over the last hour by default."""
    try:
        since_ns = parse_time_arg(since, time.time_ns())
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since") from None
    if input_file is not None:
        names = namespaces_of(read_events(input_file, lambda n, m: None), since_ns)
    else:
        query = FlowsQuery(number=ALL, since=since_ns)
        _, names = _client_call(ctx, server, timeout,
                                lambda c: namespaces_of(c.get_flows(query), since_ns))
    if output == "json":
        for name in names:
            click.echo(json.dumps({"namespace": name}))
        return
    click.echo("NAMESPACE")
    for name in names:
        click.echo(name)
