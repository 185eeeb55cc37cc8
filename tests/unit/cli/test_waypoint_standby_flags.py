"""`tulle waypoint --active-lock/--standby` (the node's active/standby pair): --standby alone is
a usage error; both reach the waypoint's runner."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import l7proxy.node
from agent.cli.node import node_cli

BASE = ["waypoint", "--node", "n1", "--pin-dir", "/x", "--listen", "10.0.0.1:15001",
        "--flow-intake", "/x.sock"]


def test_standby_without_a_lock_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(l7proxy.node, "run", lambda *a: pytest.fail("the waypoint ran"))
    out = CliRunner().invoke(node_cli, [*BASE, "--standby"])
    assert out.exit_code == 2, out.output
    assert "--standby needs --active-lock" in out.output


def test_the_lock_and_the_role_reach_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(l7proxy.node, "run", lambda *a: seen.append(a) or 0)
    out = CliRunner().invoke(node_cli, [*BASE, "--active-lock", "/run/w.lock", "--standby"])
    assert out.exit_code == 0, out.output
    assert seen[0][-3:] == ("/run/w.lock", True, False)  # X-Forwarded-For untrusted by default


def test_trust_forwarded_for_reaches_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(l7proxy.node, "run", lambda *a: seen.append(a) or 0)
    out = CliRunner().invoke(node_cli, [*BASE, "--trust-forwarded-for"])
    assert out.exit_code == 0, out.output
    assert seen[0][-1] is True
