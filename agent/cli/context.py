"""Which store a CLI invocation talks to: --store, $TULLE_STORE, or the named lab's store."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agent.lab.state import DEFAULT_LAB, LabPaths


def lab_name(ctx: click.Context) -> str:
    return str(ctx.find_root().params.get("lab") or os.environ.get("TULLE_LAB") or DEFAULT_LAB)


def store_path(ctx: click.Context) -> Path:
    explicit = ctx.find_root().params.get("store") or os.environ.get("TULLE_STORE")
    if explicit:
        return Path(explicit)
    name = lab_name(ctx)
    path = LabPaths.for_lab(name).store
    if not path.exists():
        raise click.ClickException(
            f"no lab named {name!r} is running (no store at {path}). "
            "Start one with `tulle lab up`, or point --store / $TULLE_STORE at a store file."
        )
    return path
