"""`tulle agent --announce-interface`: off when absent, handed to the agent's configuration
(a missing interface is refused when the agent opens it: tests/netns/test_announce.py)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import agent.daemon
from agent.cli.node import node_cli


def run_agent(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    seen: list[Any] = []
    monkeypatch.setattr(agent.daemon, "run", lambda config: seen.append(config) or 0)
    return CliRunner().invoke(node_cli, ["agent", "--node", "n1", *args]), seen


def test_announcing_is_off_without_an_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    out, [config] = run_agent([], monkeypatch)
    assert out.exit_code == 0, out.output
    assert config.announce_interface is None


def test_the_interface_reaches_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    out, [config] = run_agent(["--announce-interface", "eth0"], monkeypatch)
    assert out.exit_code == 0, out.output
    assert config.announce_interface == "eth0"
