"""``run``: the ``tulle`` CLI against a lab API server on loopback over a fresh store in
``tmp_path`` (``run.store`` is the store's path, ``run.api`` the server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli.main import cli

from .labapi import lab_api


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    store = tmp_path / "store.db"
    with lab_api(store) as api:

        def invoke(*args: str, input: str | None = None) -> Any:
            return CliRunner().invoke(
                cli, ["--kubeconfig", str(api.kubeconfig), *args], input=input
            )

        invoke.store = store  # type: ignore[attr-defined]
        invoke.api = api  # type: ignore[attr-defined]
        yield invoke
