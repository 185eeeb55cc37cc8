"""`tulle agent --trust-domain`: checked as a SPIFFE trust domain at start (a bad one is a
usage error naming the rule), and handed to the agent's configuration."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import agent.daemon
from agent.cli.node import node_cli


@pytest.mark.parametrize(("bad", "why"), [
    ("Cluster.Local", "is not lowercase"),
    ("td.example:8443", "has a port"),
    ("", "the trust domain is empty"),
    ("a/b", "'/'"),
])
def test_a_bad_trust_domain_is_a_usage_error(bad: str, why: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent.daemon, "run", lambda config: pytest.fail("the agent ran"))
    out = CliRunner().invoke(node_cli, ["agent", "--node", "n1", "--trust-domain", bad])
    assert out.exit_code == 2, out.output
    assert "Invalid value for --trust-domain:" in out.output and why in out.output


@pytest.mark.parametrize(("args", "want"), [
    ([], "cluster.local"), (["--trust-domain", "prod.example.org"], "prod.example.org")])
def test_the_trust_domain_reaches_the_config(args: list[str], want: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(agent.daemon, "run", lambda config: seen.append(config) or 0)
    out = CliRunner().invoke(node_cli, ["agent", "--node", "n1", *args])
    assert out.exit_code == 0, out.output
    assert seen[0].trust_domain == want
