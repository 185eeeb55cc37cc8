"""`tulle map` end to end: from a saved file and from an in-process observer server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.servicemap import map_cmd
from agent.flows.codec import envelope
from agent.flows.store import FlowRing
from agent.observer.server import ObserverServer
from tests.unit.servicemap.scenario import SECOND, minute
from tests.unit.servicemap.test_render import PNG_MAGIC, needs_dot, png_size


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "flows.json"
    flows = minute(1_700_000_000 * SECOND)
    path.write_text("".join(json.dumps(envelope(f)) + "\n" for f in flows) + "not json\n")
    return path


@pytest.fixture
def observer(tmp_path: Path) -> Iterator[str]:
    ring = FlowRing(5000)
    ring.put_many(minute(time.time_ns() - 120 * SECOND))  # a minute, two minutes ago
    sock = tmp_path / "observer.sock"
    server = ObserverServer(ring, "node-1", unix_socket=sock).start()
    yield f"unix:{sock}"
    server.stop(grace=0)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(map_cmd, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_text_from_file(saved: Path) -> None:
    code, out, err = run("--input-file", str(saved))
    assert code == 0, err
    assert out.startswith("Service map: last 59.8s, 884 flows, 7 nodes, 7 edges")
    assert "-> svc backend/catalog" in out
    assert f"{saved}:885: skipped, not a flow" in err


def test_filters_apply(saved: Path) -> None:
    code, out, _ = run("--input-file", str(saved), "--not", "--namespace", "data")
    assert code == 0
    assert "data/db" not in out
    assert "svc backend/catalog" in out


def test_dot_to_stdout(saved: Path) -> None:
    code, out, _ = run("--input-file", str(saved), "-o", "dot")
    assert code == 0
    assert out.startswith("digraph tulle_map {")
    assert 'subgraph "cluster_backend"' in out


@needs_dot
def test_png_written_to_tulle_map_png_by_default(saved: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("--input-file", str(saved), "-o", "png")
    assert code == 0, err
    data = (tmp_path / "tulle-map.png").read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = png_size(data)
    assert width > 600 and height > 200
    assert "wrote tulle-map.png (PNG, 7 nodes, 7 edges" in err


@needs_dot
def test_svg_to_a_named_file(saved: Path, tmp_path: Path) -> None:
    target = tmp_path / "app.svg"
    code, _, _ = run("--input-file", str(saved), "-o", "svg", "--output", str(target))
    assert code == 0
    assert "<svg" in target.read_text()


def test_from_the_observer_api_over_the_default_window(observer: str) -> None:
    code, out, err = run("--server", observer)
    assert code == 0, err
    assert out.startswith("Service map: last 5m, 884 flows")
    line = next(ln for ln in out.splitlines() if "-> svc backend/catalog" in ln)
    assert line.split()[4:6] == ["1.00", "req/s"]  # 300 requests over 5 minutes


def test_since_narrows_the_window(observer: str) -> None:
    code, out, _ = run("--server", observer, "--since", "90s")
    assert code == 0
    head = out.splitlines()[0]
    assert head.startswith("Service map: last 1m30s,")
    flows = int(head.split(", ")[1].split()[0].replace(",", ""))
    assert 0 < flows < 884  # only the second half of the minute


def test_unreachable_server_says_what_to_do(tmp_path: Path) -> None:
    code, _, err = run("--server", f"unix:{tmp_path}/none.sock", "--timeout", "1")
    assert code == 1
    assert "no flow observer answers" in err and "--input-file" in err


def test_bad_since() -> None:
    result = CliRunner().invoke(map_cmd, ["--since", "yesterday-ish"])
    assert result.exit_code == 2
    assert "neither a relative time" in result.stderr
