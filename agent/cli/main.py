"""The `tulle` command line."""

from __future__ import annotations

import click

from agent.cli.lab import lab
from agent.cli.resources import apply, delete, describe_cmd, get, wait


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--lab", envvar="TULLE_LAB", default=None, help="Lab to talk to (default 'lab').")
@click.option(
    "--store",
    envvar="TULLE_STORE",
    default=None,
    type=click.Path(dir_okay=False),
    help="Store file to use instead of the lab's.",
)
def cli(lab: str | None, store: str | None) -> None:
    """Tulle: a sidecarless service mesh with an eBPF data path."""


@cli.command()
@click.option("--node", required=True, help="This node's name.")
@click.option("--store", "store_file", required=True, type=click.Path(dir_okay=False))
@click.option("--health-file", default=None, type=click.Path(dir_okay=False))
def agent(node: str, store_file: str, health_file: str | None) -> None:
    """Run the node agent (one per node; the DaemonSet's process)."""
    from agent.daemon import run

    raise SystemExit(run(node, store_file, health_file))


cli.add_command(lab)
cli.add_command(apply)
cli.add_command(delete)
cli.add_command(get)
cli.add_command(describe_cmd)
cli.add_command(wait)


def main() -> None:
    cli(prog_name="tulle")


if __name__ == "__main__":
    main()
