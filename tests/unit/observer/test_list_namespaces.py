"""`tulle list namespaces` (issue 12 item 6): namespaces seen in flows, from a saved file
and live through a node's observer."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli
from agent.flows.codec import envelope
from agent.flows.store import FlowRing
from tests.unit.flows.samples import all_samples
from tests.unit.observer.conftest import NodeFactory

SINCE = "2023-11-22T00:00:00Z"  # the golden flows' day


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_namespaces_from_a_saved_file(tmp_path: Path) -> None:
    path = tmp_path / "flows.json"
    path.write_text("".join(json.dumps(envelope(f)) + "\n" for f in all_samples()))
    code, out = run("list", "namespaces", "--input-file", str(path), "--since", SINCE)
    assert code == 0, out
    assert out.splitlines() == ["NAMESPACE", "data", "shop"]
    code, out = run("list", "namespaces", "--input-file", str(path), "--since", SINCE,
                    "-o", "json")
    assert [json.loads(x) for x in out.splitlines()] == [{"namespace": "data"},
                                                         {"namespace": "shop"}]
    # flows older than the window are left out: only the DNS flow (web -> world) is later
    code, out = run("list", "namespaces", "--input-file", str(path),
                    "--since", "2023-11-22T10:00:00.129Z")
    assert out.splitlines() == ["NAMESPACE", "shop"]
    code, out = run("list", "namespaces", "--input-file", str(path), "--since", "yesterday")
    assert code == 2 and "--since" in out


def test_namespaces_live(start_node: NodeFactory) -> None:
    ring = FlowRing(100)
    ring.put_many(all_samples())
    node = start_node("node-1", ring)
    code, out = run("list", "namespaces", "--server", node.targets[0], "--since", SINCE)
    assert code == 0, out
    assert out.splitlines() == ["NAMESPACE", "data", "shop"]
