"""`tulle lab exec --external -- CMD...`: the command runs in the lab's external client
namespace (named by lab/topology.py), never a pod's, and bad forms get a usage error."""

from __future__ import annotations

import os
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli import lab as lab_cli
from agent.cli.main import cli
from lab.topology import plan_lab


class Exec(Exception):
    """Raised in place of os.execvp so the test sees the argv it would have run."""


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    seen: list[list[str]] = []

    def fake_execvp(file: str, argv: list[str]) -> None:
        seen.append(list(argv))
        raise Exec

    monkeypatch.setenv("TULLE_LAB", "demo")
    monkeypatch.setattr(os, "execvp", fake_execvp)
    monkeypatch.setattr(lab_cli.labstatus, "load_plan", lambda paths: plan_lab("demo", 2))
    return seen


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["lab", "exec", *args])


def test_external_runs_the_whole_command_in_the_external_namespace(
    execs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/var/run/netns/tulle-demo-external")
    result = invoke("--external", "--", "curl", "-s", "http://10.240.0.11:30080/")
    assert isinstance(result.exception, Exec), result.output
    assert execs == [
        ["ip", "netns", "exec", "tulle-demo-external", "curl", "-s", "http://10.240.0.11:30080/"]
    ]


def test_external_without_a_command_is_a_usage_error(execs: list[list[str]]) -> None:
    result = invoke("--external", "--")
    assert result.exit_code == 2 and "--external -- CMD" in result.output
    assert execs == []


def test_external_on_a_lab_without_the_client_names_the_fix(
    execs: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os.path, "exists", lambda p: False)
    result = invoke("--external", "--", "true")
    assert result.exit_code == 1 and "tulle lab down" in result.output
    assert execs == []


def test_a_pod_without_a_command_is_a_usage_error(execs: list[list[str]]) -> None:
    result = invoke("web")
    assert result.exit_code == 2 and "POD -- CMD" in result.output
