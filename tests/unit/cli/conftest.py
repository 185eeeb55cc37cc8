"""``run``: the ``tulle`` CLI against a fresh store in ``tmp_path`` (``run.store`` is its path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import cli


@pytest.fixture
def run(tmp_path: Path):
    store = tmp_path / "store.db"

    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, ["--store", str(store), *args], input=input)

    invoke.store = store  # type: ignore[attr-defined]
    return invoke
