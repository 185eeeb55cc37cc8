"""The `tulle` command line."""

from __future__ import annotations

import click

from agent.cli.apply import apply
from agent.cli.context import cluster_options, lab_name
from agent.cli.lab import lab
from agent.cli.namespaces import list_namespaces
from agent.cli.observe import list_group, observe, set_default_server, status
from agent.cli.resources import delete, describe_cmd, get, wait
from agent.cli.servicemap import map_cmd
from agent.cli.trace import trace
from agent.lab.state import LabPaths


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lab", envvar="TULLE_LAB", default=None, help="Lab to talk to (default 'lab').")
@cluster_options
def cli(lab: str | None, kubeconfig: str | None, context_name: str | None) -> None:
    """Tulle: a sidecarless service mesh with an eBPF data path.

    \b
    apply, get, describe, delete and wait talk to the Kubernetes API with the kubeconfig of:
    --kubeconfig; else --lab/$TULLE_LAB (that lab's); else $KUBECONFIG; else the lab 'lab'
    when it is up; else ~/.kube/config; else in-cluster config. --context picks a context.
    """


@cli.command()
@click.option("--node", required=True, help="This node's name.")
@click.option("--store", "store_file", required=True, type=click.Path(dir_okay=False))
@click.option("--health-file", default=None, type=click.Path(dir_okay=False))
@click.option("--pin-dir", default=None, help="Load the eBPF datapath, pinning maps here.")
@click.option("--observer-socket", default=None, help="Unix socket for the observer API.")
@click.option(
    "--observer-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the observer API's TCP port binds (the node IP only behind a host firewall).",
)
@click.option("--observer-port", default=4244, show_default=True, help="Observer API TCP port.")
@click.option("--flow-capacity", default=65_535, show_default=True, help="Flows kept in memory.")
@click.option(
    "--metrics-address",
    default="127.0.0.1:9965",
    show_default=True,
    help="Prometheus endpoint HOST:PORT; empty to disable.",
)
@click.option(
    "--metrics-hubble-names/--no-metrics-hubble-names",
    default=False,
    show_default=True,
    help="Expose flow metrics Hubble also has under Hubble's names (hubble_drop_total…).",
)
@click.option("--l7-intake", default=None, help="Unix socket for the waypoint's L7 flows.")
@click.option(
    "--waypoint",
    default=None,
    metavar="IPv4:PORT",
    help="Where this node's waypoint listens: the datapath redirects L7 connections there.",
)
@click.option(
    "--ct-endpoint-quota",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Live connections one pod may open (conntrack fairness); 0: an eighth of the table.",
)
@click.option(
    "--trace/--no-trace",
    default=True,
    show_default=True,
    help="Kernel connection tracing (tracepoints; needs --pin-dir).",
)
def agent(
    node: str,
    store_file: str,
    health_file: str | None,
    pin_dir: str | None,
    observer_socket: str | None,
    observer_host: str,
    observer_port: int,
    flow_capacity: int,
    metrics_address: str,
    metrics_hubble_names: bool,
    l7_intake: str | None,
    waypoint: str | None,
    ct_endpoint_quota: int,
    trace: bool,
) -> None:
    """Run the node agent (one per node; the DaemonSet's process)."""
    from agent.daemon import AgentConfig, run

    config = AgentConfig(
        node=node,
        store_file=store_file,
        health_file=health_file,
        pin_dir=pin_dir,
        observer_socket=observer_socket,
        observer_host=observer_host,
        observer_port=observer_port,
        metrics_address=metrics_address or None,
        metrics_hubble_names=metrics_hubble_names,
        l7_intake=l7_intake,
        flow_capacity=flow_capacity,
        waypoint=waypoint,
        ct_endpoint_quota=ct_endpoint_quota,
        trace=trace,
    )
    raise SystemExit(run(config))


@cli.command()
@click.option("--node", required=True, help="This node's name.")
@click.option("--store", "store_file", required=True, type=click.Path(dir_okay=False))
@click.option("--pin-dir", required=True, help="The node's datapath pin dir (redirect map).")
@click.option("--listen", required=True, help="ADDRESS:PORT the datapath redirects to.")
@click.option("--flow-intake", required=True, help="The node agent's L7 flow socket.")
@click.option(
    "--metrics-address",
    default="127.0.0.1:9966",
    show_default=True,
    help="The waypoint's Prometheus endpoint HOST:PORT.",
)
def waypoint(
    node: str, store_file: str, pin_dir: str, listen: str, flow_intake: str, metrics_address: str
) -> None:
    """Run the node's L7 waypoint (HTTPRoutes, Gateways) behind transparent redirection."""
    from agent.waypoint import run

    raise SystemExit(run(node, store_file, pin_dir, listen, flow_intake, metrics_address))


cli.add_command(lab)
cli.add_command(apply)
cli.add_command(delete)
cli.add_command(get)
cli.add_command(describe_cmd)
cli.add_command(wait)
cli.add_command(observe)
cli.add_command(status)
list_group.add_command(list_namespaces)
cli.add_command(list_group)
cli.add_command(map_cmd)
cli.add_command(trace)


def _lab_relay(ctx: click.Context) -> str | None:
    socket = LabPaths.for_lab(lab_name(ctx)).relay_socket
    return f"unix:{socket}" if socket.exists() else None


set_default_server(_lab_relay)


def main() -> None:
    cli(prog_name="tulle")


if __name__ == "__main__":
    main()
