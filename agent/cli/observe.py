"""`tulle observe`, `tulle status` and `tulle list nodes`: Hubble's CLI, against Tulle's
observer API (the relay by default) or a saved `-o json` file.

Register with ``cli.add_command(observe)``, ``cli.add_command(status)`` and
``cli.add_command(list_group)``. The server address is ``--server``, else
``$TULLE_RELAY``, else what `set_default_server` installed (the lab's relay socket), else
``localhost:4245``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import click

from agent.flows.filters import FilterError, compile_filters
from agent.flows.flagfilters import FilterBuilder
from agent.flows.flow import Flow, LostEvent
from agent.flows.printer import OUTPUT_ALIASES, OUTPUTS, FlowPrinter, format_duration
from agent.flows.replay import parse_time_arg, read_events, select_stream
from agent.flows.timefmt import DEFAULT_TIME_FORMAT, TIME_FORMATS
from agent.observer import RELAY_PORT
from agent.observer.client import ObserverClient, ObserverRequestError, ObserverUnavailable
from agent.observer.convert import ALL, FlowsQuery, NodeStatus

DEFAULT_LAST = 20
_default_server: Callable[[click.Context], str | None] = lambda ctx: None  # noqa: E731


def set_default_server(resolve: Callable[[click.Context], str | None]) -> None:
    """Install how to find the server when neither --server nor $TULLE_RELAY is given."""
    global _default_server
    _default_server = resolve


def server_address(ctx: click.Context, explicit: str | None) -> str:
    return explicit or _default_server(ctx) or f"localhost:{RELAY_PORT}"


def _unreachable(address: str, reason: str) -> click.ClickException:
    return click.ClickException(
        f"no flow observer answers at {address} ({reason}). Is the lab up (`tulle lab up`)? "
        f"Otherwise point --server or $TULLE_RELAY at a relay (port {RELAY_PORT}) or an agent "
        "(port 4244), or replay a saved file with --input-file."
    )


_server_options = [
    click.option("--server", envvar="TULLE_RELAY", metavar="ADDRESS",
                 help="Relay or agent: host:port, unix:/path or /path "
                      "(default: $TULLE_RELAY, the lab relay, localhost:4245)."),
    click.option("--timeout", default=5.0, show_default=True, metavar="SECONDS",
                 help="How long to wait for the server to answer."),
]


def server_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_server_options):
        f = opt(f)
    return f


# -- filter flags, kept in command-line order ----------------------------------------------

_FILTER_FLAGS: list[tuple[tuple[str, ...], str]] = [
    (("--pod",), "Pod name prefix, [namespace/]name, as source or destination."),
    (("--from-pod",), "Source pod, [namespace/]name-prefix."),
    (("--to-pod",), "Destination pod, [namespace/]name-prefix."),
    (("-n", "--namespace"), "Namespace of source or destination."),
    (("--from-namespace",), "Source namespace."),
    (("--to-namespace",), "Destination namespace."),
    (("-l", "--label"), "Label selector (app=web, 'tier in (a,b)') on either side."),
    (("--from-label",), "Source label selector."),
    (("--to-label",), "Destination label selector."),
    (("--service",), "Service, [namespace/]name-prefix, on either side."),
    (("--from-service",), "Source service."),
    (("--to-service",), "Destination service."),
    (("--ip",), "IP or CIDR of source or destination."),
    (("--from-ip",), "Source IP or CIDR."),
    (("--to-ip",), "Destination IP or CIDR."),
    (("--port",), "L4 port of source or destination."),
    (("--from-port",), "Source port."),
    (("--to-port",), "Destination port."),
    (("--workload",), "Workload, [kind/]name (Deployment/web), as source or destination."),
    (("--from-workload",), "Source workload, [kind/]name."),
    (("--to-workload",), "Destination workload, [kind/]name."),
    (("--identity",), "Security identity (number or reserved name) or workload SPIFFE ID "
                      "(spiffe://TD/ns/NS/sa/SA, exact) of either side."),
    (("--from-identity",), "Source identity or SPIFFE ID."),
    (("--to-identity",), "Destination identity or SPIFFE ID."),
    (("--protocol",), "tcp, udp, icmp or http."),
    (("--tcp-flags",), "TCP flags that must all be set, e.g. SYN,ACK."),
    (("--verdict",), "FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED, TRANSLATED."),
    (("--drop-reason-desc",), "Drop reason, e.g. POLICY_DENIED."),
    (("-t", "--type"), "Event type: trace[:to-endpoint…], drop, l7, policy-verdict."),
    (("--http-status",), "HTTP status code or prefix: 404, 5+, 40+."),
    (("--http-method",), "HTTP method."),
    (("--http-path",), "Regular expression searched in the HTTP path."),
    (("--http-url",), "Regular expression searched in the full HTTP URL."),
    (("--http-header",), "HTTP header key:value (key case-insensitive, exact value)."),
    (("--ip-version",), "ipv4 or ipv6 (also -4, -6)."),
    (("--node-name",), "Node name pattern (wildcards allowed)."),
    (("--traffic-direction",), "ingress or egress."),
    (("--uuid",), "Flow UUID."),
    (("--rtt-over",), "Traced TCP connections whose mean RTT exceeds this: 500us, 5ms."),
    (("--connect-over",), "Traced TCP connections whose connect latency exceeds this."),
]


def _dest(decls: tuple[str, ...]) -> str:
    return decls[-1].lstrip("-").replace("-", "_")


class ObserveCommand(click.Command):
    """Records filter flags in command-line order, which --not depends on."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        parser = self.make_parser(ctx)
        opts, _, order = parser.parse_args(args=list(args))
        values = {k: iter(v) for k, v in opts.items() if isinstance(v, list)}
        sequence: list[tuple[str, str | None]] = []
        for param in order:
            if param.name in _FILTER_DESTS:
                sequence.append((_FILTER_DESTS[param.name], next(values[param.name])))
            elif param.name == "not_":
                sequence.append(("not", None))
            elif param.name == "all_namespaces":
                sequence.append(("all-namespaces", None))
            elif param.name == "retransmits":
                sequence.append(("retransmits", "1"))
            elif param.name in _BOOL_FLAGS:
                value = next(values[param.name])  # bare: the parser's "needs value" marker
                sequence.append((_BOOL_FLAGS[param.name],
                                 value if isinstance(value, str) else "true"))
            elif param.name in ("ipv4", "ipv6"):
                sequence.append(("ip-version", param.name))
        ctx.meta["tulle.observe.filters"] = sequence
        return super().parse_args(ctx, args)


_FILTER_DESTS = {_dest(d): d[-1].lstrip("-") for d, _ in _FILTER_FLAGS}
# Hubble's ``filter[=true]`` flags: bare, or with a value (--encrypted=false).
_BOOL_FLAGS = {"encrypted": "encrypted", "unencrypted": "unencrypted"}


def filter_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for decls, text in reversed(_FILTER_FLAGS):
        f = click.option(*decls, _dest(decls), multiple=True, metavar="VALUE", help=text)(f)
    f = click.option("--unencrypted", "unencrypted", is_flag=False, flag_value="true",
                     multiple=True, metavar="[=BOOL]",
                     help="Flows that were not encrypted (IP.encrypted false).")(f)
    f = click.option("--encrypted", "encrypted", is_flag=False, flag_value="true",
                     multiple=True, metavar="[=BOOL]",
                     help="Encrypted flows: those that rode an mTLS tunnel (IP.encrypted).")(f)
    f = click.option("--retransmits", "retransmits", count=True,
                     help="Traced TCP connections that retransmitted.")(f)
    f = click.option("-6", "--ipv6", "ipv6", count=True, help="IPv6 flows (--ip-version ipv6).")(f)
    f = click.option("-4", "--ipv4", "ipv4", count=True, help="IPv4 flows (--ip-version ipv4).")(f)
    f = click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True,
                     help="Flows in any namespace (the default; refuses -n).")(f)
    return click.option("--not", "not_", count=True,
                        help="Negate the next filter flag: --not --verdict DROPPED.")(f)


def _build_filters(ctx: click.Context) -> tuple[list[Any], list[Any]]:
    builder = FilterBuilder()
    try:
        for flag, value in ctx.meta.get("tulle.observe.filters", []):
            builder.add(flag, value)
        allow, deny = builder.build()
        compile_filters(allow, deny)  # validate values before any I/O
    except FilterError as e:
        raise click.UsageError(str(e)) from None
    return allow, deny


def _query(ctx: click.Context, last: int | None, first: int | None, all_: bool,
           follow: bool, since: str | None, until: str | None) -> FlowsQuery:
    if first is not None and (last is not None or all_):
        raise click.UsageError("--first cannot be combined with --last or --all")
    if first is not None and follow:
        raise click.UsageError("--first cannot be combined with --follow")
    if all_ and last is not None:
        raise click.UsageError("--all cannot be combined with --last")
    now = time.time_ns()
    try:
        since_ns = parse_time_arg(since, now) if since else None
        until_ns = parse_time_arg(until, now) if until else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since/--until") from None
    if first is not None:
        number = first
    elif all_:
        number = ALL
    elif last is not None:
        number = last
    elif follow or since_ns is not None or until_ns is not None:
        number = 0
    else:
        number = DEFAULT_LAST
    allow, deny = _build_filters(ctx)
    return FlowsQuery(number=number, first=first is not None, follow=follow,
                      whitelist=tuple(allow), blacklist=tuple(deny),
                      since=since_ns, until=until_ns)


def _use_color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _print_events(printer: FlowPrinter, events: Iterable[Any], follow: bool) -> None:
    last_flush = time.monotonic()
    for ev in events:
        if isinstance(ev, Flow):
            printer.flow(ev)
        elif isinstance(ev, LostEvent):
            printer.lost(ev)
        elif isinstance(ev, NodeStatus):
            printer.node_status(ev.state, ev.node_names, ev.message, ev.time)
        if follow and time.monotonic() - last_flush >= 1.0:
            printer.flush()
            last_flush = time.monotonic()
    printer.close()


@click.command(cls=ObserveCommand)
@click.option("--last", type=click.IntRange(min=1), default=None, metavar="N",
              help=f"The last N flows (default {DEFAULT_LAST}, unless following or using "
                   "--since/--until).")
@click.option("--first", type=click.IntRange(min=1), default=None, metavar="N",
              help="The first N stored flows.")
@click.option("--all", "all_", is_flag=True, help="Every stored flow.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new flows.")
@click.option("--since", metavar="TIME", help="Flows since TIME: 5m, 1h30m or RFC 3339.")
@click.option("--until", metavar="TIME", help="Flows until TIME: 5m, 1h30m or RFC 3339.")
@filter_options
@click.option("-o", "--output", type=click.Choice([*OUTPUTS, *OUTPUT_ALIASES]),
              default="compact", show_default=True,
              help="Output format (jsonpb: as json, one GetFlowsResponse per line; tab: table).")
@click.option("--time-format", type=click.Choice(list(TIME_FORMATS)),
              default=DEFAULT_TIME_FORMAT, show_default=True,
              help="Timestamps of compact, dict and table output (Go layout names, UTC).")
@click.option("--color", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True, help="Colour compact and dict output.")
@click.option("--print-node-name", is_flag=True, help="Show the node of each flow.")
@click.option("--print-policy-names", is_flag=True,
              help="After the verdict, the NetworkPolicies that allowed the flow "
                   "(\"FORWARDED BY name (NetworkPolicy)\"); JSON always carries them.")
@click.option("--input-file", type=click.File("r"), default=None, metavar="FILE|-",
              help="Replay flows saved with -o json (or Hubble's) instead of asking a server.")
@server_options
@click.pass_context
def observe(ctx: click.Context, last: int | None, first: int | None, all_: bool,
            follow: bool, since: str | None, until: str | None, output: str, time_format: str,
            color: str, print_node_name: bool, print_policy_names: bool, input_file: Any,
            server: str | None, timeout: float,
            **_filters: Any) -> None:
    """Show flows, Hubble style. Repeated values of a filter flag are OR-ed, different
    flags are AND-ed, and --not sends the next flag to a deny list."""
    query = _query(ctx, last, first, all_, follow, since, until)
    printer = FlowPrinter(output, color=_use_color(color), node_name=print_node_name,
                          time_format=time_format, policy_names=print_policy_names)
    try:
        if input_file is not None:
            _replay(input_file, query, printer)
            return
        address = server_address(ctx, server)
        with ObserverClient(address, connect_timeout=timeout) as client:
            try:
                _print_events(printer, client.get_flows(query), follow)
            except ObserverUnavailable as e:
                raise _unreachable(address, e.reason) from None
            except ObserverRequestError as e:
                raise click.ClickException(f"{address} refused the request: {e}") from None
    except KeyboardInterrupt:
        printer.close()
    except BrokenPipeError:  # `| head`: stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _replay(stream: Any, query: FlowsQuery, printer: FlowPrinter) -> None:
    name = getattr(stream, "name", "<stdin>")

    def bad_line(number: int, message: str) -> None:
        click.echo(f"{name}:{number}: skipped, not a flow: {message}", err=True)

    keep = compile_filters(query.whitelist, query.blacklist)
    number = 0 if query.number == ALL else query.number
    events = select_stream(read_events(stream, bad_line), number, first=query.first,
                           since=query.since, until=query.until, predicate=keep)
    _print_events(printer, events, query.follow)


# -- status and list nodes -----------------------------------------------------------------


def _client_call(ctx: click.Context, server: str | None, timeout: float,
                 call: Callable[[ObserverClient], Any]) -> tuple[str, Any]:
    address = server_address(ctx, server)
    with ObserverClient(address, connect_timeout=timeout) as client:
        try:
            return address, call(client)
        except ObserverUnavailable as e:
            raise _unreachable(address, e.reason) from None
        except ObserverRequestError as e:
            raise click.ClickException(f"{address}: {e}") from None


def _percent(cur: int, cap: int) -> str:
    return f"{cur:,}/{cap:,} ({100 * cur / cap:.2f}%)" if cap else f"{cur:,}/0"


@click.command()
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@server_options
@click.pass_context
def status(ctx: click.Context, output: str, server: str | None, timeout: float) -> None:
    """Health of the flow observer: stored flows, flows/s, connected and unavailable nodes."""
    address, s = _client_call(ctx, server, timeout, lambda c: c.server_status())
    if output == "json":
        click.echo(json.dumps({"server": address, **asdict(s)}, default=list))
        return
    click.echo(f"Healthcheck (via {address}): Ok")
    click.echo(f"Current/Max Flows: {_percent(s.num_flows, s.max_flows)}")
    click.echo(f"Flows/s: {s.flows_rate:.2f}")
    if s.num_connected_nodes is not None:
        total = s.num_connected_nodes + (s.num_unavailable_nodes or 0)
        click.echo(f"Connected Nodes: {s.num_connected_nodes}/{total}")
    if s.num_unavailable_nodes:
        click.echo(f"Unavailable Nodes: {s.num_unavailable_nodes}")
        for name in s.unavailable_nodes:
            click.echo(f"  - {name}")
    if s.lost_events:
        lost = ", ".join(f"{k} {v:,}" for k, v in sorted(s.lost_events.items()))
        click.echo(f"Lost Events: {lost}")


def format_age(ns: int) -> str:
    """Kubernetes-style age: 45s, 12m, 2h13m, 3d4h."""
    secs = ns // 1_000_000_000
    if secs < 120:
        return format_duration(ns) if secs < 1 else f"{secs}s"
    mins, hours, days = secs // 60, secs // 3600, secs // 86400
    if hours < 1:
        return f"{mins}m"
    if days < 1:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"


@click.group("list")
def list_group() -> None:
    """List observer resources."""


@list_group.command("nodes")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@server_options
@click.pass_context
def list_nodes(ctx: click.Context, output: str, server: str | None, timeout: float) -> None:
    """Nodes behind the relay: status, age, flows/s and stored flows."""
    _, nodes = _client_call(ctx, server, timeout, lambda c: c.get_nodes())
    if output == "json":
        for n in nodes:
            click.echo(json.dumps(asdict(n)))
        return
    rows = [["NAME", "STATUS", "AGE", "FLOWS/S", "CURRENT/MAX-FLOW"]]
    for n in sorted(nodes, key=lambda n: n.name):
        up = n.state == "NODE_CONNECTED"
        rows.append([
            n.name,
            "Connected" if up else "Unavailable",
            format_age(n.uptime_ns) if up else "N/A",
            f"{n.flows_rate:.2f}" if up else "N/A",
            _percent(n.num_flows, n.max_flows) if up else "N/A",
        ])
    widths = [max(len(r[i]) for r in rows) + 3 for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + r[-1])
