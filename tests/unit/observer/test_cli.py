"""`tulle observe`, `tulle status` and `tulle list nodes` end to end through click."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.cli.observe import format_age, list_group, observe, set_default_server, status
from agent.flows.codec import envelope, lost_event_to_json
from agent.flows.flow import LostEvent, LostEventSource
from agent.flows.store import FlowRing
from agent.observer.relay import Relay
from tests.unit.flows.samples import T0, all_samples
from tests.unit.observer.conftest import NodeFactory


@click.group()
def cli() -> None:
    """Stand-in for agent.cli.main's group."""


cli.add_command(observe)
cli.add_command(status)
cli.add_command(list_group)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """`-o json` output of the sample flows, a lost-event line and one bad line."""
    lines = [json.dumps(envelope(f)) for f in all_samples()]
    lost = LostEvent(LostEventSource.PERF_EVENT_RING_BUFFER, 9, cpu=2, time=T0 + 2_500_000)
    lines.insert(3, json.dumps(lost_event_to_json(lost)))
    lines.insert(1, "this is not json")
    path = tmp_path / "flows.json"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def uuids(stdout: str) -> list[str]:
    out = []
    for line in stdout.splitlines():
        flow = json.loads(line).get("flow")
        if flow is not None:
            out.append(flow.get("uuid", "u")[-1])
    return out


def test_replay_compact_by_default(saved: Path) -> None:
    code, out, err = run("observe", "--input-file", str(saved))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 6
    assert lines[0] == ("Nov 22 10:00:00.123: shop/web-1:43512 (ID:12345) -> shop/echo-2:8080 "
                        "(ID:23456) to-endpoint FORWARDED (TCP Flags: SYN)")
    assert "EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(2) 9" in err
    assert f"{saved}:2: skipped, not a flow" in err


def test_replay_json_filters_and_selection(saved: Path) -> None:
    f = str(saved)
    assert uuids(run("observe", "--input-file", f, "-o", "json")[1]) == list("12345u")
    assert uuids(run("observe", "--input-file", f, "-o", "json", "--last", "2")[1]) == ["5", "u"]
    assert uuids(run("observe", "--input-file", f, "-o", "json", "--first", "2")[1]) == ["1", "2"]
    assert uuids(run("observe", "--input-file", f, "-o", "json",
                     "--pod", "shop/echo")[1]) == ["1", "2", "4", "5"]
    assert uuids(run("observe", "--input-file", f, "-o", "json",
                     "--verdict", "DROPPED", "--verdict", "FORWARDED", "--protocol", "udp")[1]) \
        == ["u"]
    assert uuids(run("observe", "--input-file", f, "-o", "json",
                     "--http-status", "2+")[1]) == ["5"]
    assert uuids(run("observe", "--input-file", f, "-o", "json", "--type", "drop")[1]) == ["3"]
    assert uuids(run("observe", "--input-file", f, "-o", "json",
                     "--since", "2023-11-22T10:00:00.126Z",
                     "--until", "2023-11-22T10:00:00.129Z")[1]) == ["4", "5"]
    # the lost-events line survives as a line of its own
    out = run("observe", "--input-file", f, "-o", "json", "--verdict", "DROPPED")[1]
    assert any("lost_events" in json.loads(line) for line in out.splitlines())


def test_not_negates_the_next_flag_only(saved: Path) -> None:
    f = str(saved)
    a = run("observe", "--input-file", f, "-o", "json", "--not", "--pod", "shop/echo",
            "--verdict", "FORWARDED")
    assert uuids(a[1]) == ["u"]  # forwarded AND NOT involving echo
    b = run("observe", "--input-file", f, "-o", "json", "--verdict", "FORWARDED",
            "--not", "--pod", "shop/echo")
    assert uuids(b[1]) == ["u"]
    c = run("observe", "--input-file", f, "-o", "json", "--not", "--verdict", "FORWARDED",
            "--pod", "shop/web")
    assert uuids(c[1]) == ["3"]


def test_stdin_replay_and_namespace(saved: Path) -> None:
    code, out, _ = run("observe", "--input-file", "-", "-o", "json", "-n", "data",
                       input=saved.read_text())
    assert code == 0 and uuids(out) == ["3"]


def test_usage_errors(saved: Path) -> None:
    f = str(saved)
    for args, message in [
        (["--first", "2", "--follow"], "--first cannot be combined with --follow"),
        (["--first", "2", "--last", "3"], "--first cannot be combined"),
        (["--label", "app=a", "--from-label", "app=b"], "cannot be combined"),
        (["-A", "-n", "shop"], "cannot be combined"),
        (["--http-status", "700"], "http status"),
        (["--since", "last tuesday"], "neither a relative time"),
        (["--not"], "--not must be followed"),
    ]:
        code, _, err = run("observe", "--input-file", f, *args)
        assert code == 2, (args, err)
        assert message in err, (args, err)


def test_colour_only_when_asked(saved: Path) -> None:
    plain = run("observe", "--input-file", str(saved))[1]
    assert "\x1b[" not in plain  # CliRunner is not a terminal: auto means no colour
    coloured = run("observe", "--input-file", str(saved), "--color", "always")[1]
    assert "\x1b[32mFORWARDED\x1b[0m" in coloured


def test_nothing_answers_is_one_clear_line(tmp_path: Path) -> None:
    sock = tmp_path / "relay.sock"
    for cmd in (["observe"], ["status"], ["list", "nodes"]):
        code, out, err = run(*cmd, "--server", str(sock), "--timeout", "0.5")
        assert code == 1, cmd
        assert out == ""
        assert err.count("\n") == 1 and f"no flow observer answers at {sock}" in err
        assert "tulle lab up" in err


def test_default_server_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "lab-relay.sock"
    monkeypatch.delenv("TULLE_RELAY", raising=False)
    set_default_server(lambda ctx: str(sock))
    try:
        assert str(sock) in run("status", "--timeout", "0.3")[2]
        monkeypatch.setenv("TULLE_RELAY", "unix:/elsewhere.sock")
        assert "unix:/elsewhere.sock" in run("status", "--timeout", "0.3")[2]
    finally:
        set_default_server(lambda ctx: None)


def test_live_observe_status_and_nodes(start_node: NodeFactory, tmp_path: Path) -> None:
    ring = FlowRing(100)
    ring.put_many(all_samples())
    node = start_node("node-1", ring)
    peers = [("node-1", node.targets[0]), ("node-2", str(tmp_path / "gone.sock"))]
    with Relay(peers, tcp_address=None, unix_socket=tmp_path / "relay.sock",
               connect_timeout=0.5, status_timeout=0.5) as relay:
        server = relay.targets[0]
        code, out, err = run("observe", "--server", server, "-o", "json", "--to-port", "8080")
        assert code == 0 and uuids(out) == ["1", "4"]
        assert "1 nodes are unavailable: node-2" in err

        code, out, _ = run("status", "--server", server)
        assert code == 0
        assert out.splitlines() == [
            f"Healthcheck (via {server}): Ok",
            "Current/Max Flows: 6/100 (6.00%)",
            "Flows/s: 0.00",
            "Connected Nodes: 1/2",
            "Unavailable Nodes: 1",
            "  - node-2",
        ]
        code, out, _ = run("list", "nodes", "--server", server)
        lines = out.splitlines()
        assert lines[0].split() == ["NAME", "STATUS", "AGE", "FLOWS/S", "CURRENT/MAX-FLOW"]
        assert lines[1].split()[:2] == ["node-1", "Connected"]
        assert lines[1].endswith("6/100 (6.00%)")
        assert lines[2].split() == ["node-2", "Unavailable", "N/A", "N/A", "N/A"]
        code, out, _ = run("status", "--server", server, "-o", "json")
        assert json.loads(out)["unavailable_nodes"] == ["node-2"]


def test_age_format() -> None:
    s = 1_000_000_000
    assert [format_age(n * s) for n in (5, 119, 600, 7980, 3 * 86400 + 4 * 3600)] == [
        "5s", "119s", "10m", "2h13m", "3d4h"
    ]
