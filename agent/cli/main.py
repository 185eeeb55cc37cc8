"""The `tulle` command line."""

from __future__ import annotations

import click

from agent.cli.apply import apply
from agent.cli.context import cluster_options, lab_name
from agent.cli.convert import convert_cmd
from agent.cli.identity import identity
from agent.cli.lab import lab
from agent.cli.namespaces import list_namespaces
from agent.cli.node import agent, waypoint
from agent.cli.observe import list_group, observe, set_default_server, status
from agent.cli.relay import certs, relay
from agent.cli.resources import delete, describe_cmd, get, wait
from agent.cli.servicemap import map_cmd
from agent.cli.trace import trace
from lab.state import LabPaths


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


cli.add_command(agent)
cli.add_command(waypoint)
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
cli.add_command(relay)
cli.add_command(certs)
cli.add_command(trace)
cli.add_command(identity)
cli.add_command(convert_cmd)


def _lab_relay(ctx: click.Context) -> str | None:
    socket = LabPaths.for_lab(lab_name(ctx)).relay_socket
    return f"unix:{socket}" if socket.exists() else None


set_default_server(_lab_relay)


def main() -> None:
    cli(prog_name="tulle")


if __name__ == "__main__":
    main()
