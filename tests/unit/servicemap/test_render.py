"""Text and DOT renderings, and real SVG/PNG output from Graphviz's dot."""

from __future__ import annotations

import shutil
import struct

import pytest

from agent.servicemap import build_graph, render, render_text, to_dot
from agent.servicemap.dot import RenderError, quote
from agent.servicemap.graph import ServiceGraph
from agent.servicemap.text import format_latency, format_window
from tests.conftest import IN_CI
from tests.unit.servicemap.scenario import SECOND, WINDOW_S, minute

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Outside CI a machine without Graphviz skips; under CI setup installs it, so it must run.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and not IN_CI,
    reason="Graphviz's `dot` is not installed (`make setup` installs it)",
)


@pytest.fixture(scope="module")
def graph() -> ServiceGraph:
    return build_graph(minute(1_700_000_000 * SECOND), WINDOW_S)


def test_text_lists_callers_with_figures(graph: ServiceGraph) -> None:
    text = render_text(graph)
    lines = text.splitlines()
    assert lines[0] == "Service map: last 1m, 884 flows, 7 nodes, 7 edges"
    web = lines.index("frontend/web (Deployment)")
    block = lines[web + 1:web + 4]
    assert block[0].split() == ["->", "data/db", "(Pod)", "TCP:5432", "0.07", "conn/s",
                                "err", "100%", "p99", "-", "n=4", "dropped:",
                                "POLICY_DENIED", "4"]
    assert block[1].split()[:11] == ["->", "svc", "backend/catalog", "HTTP,TCP:8080",
                                     "5.00", "req/s", "err", "1%", "p99", "30ms", "n=300"]
    assert block[2].split()[:4] == ["->", "world", "UDP:53", "0.50"]
    # callers come before callees: the world's calls before the service they reach
    assert lines.index("world") < lines.index("svc frontend/web")
    assert "\x1b[" not in text


def test_text_colours_error_rates() -> None:
    text = render_text(build_graph(minute(1_700_000_000 * SECOND), WINDOW_S), color=True)
    assert "\x1b[31merr 100%" in text  # red: 5% or more
    assert "\x1b[33merr 1%" in text  # yellow: some


def test_text_for_no_traffic() -> None:
    assert "No traffic" in render_text(build_graph([], 300))


def test_dot_clusters_labels_and_colours(graph: ServiceGraph) -> None:
    dot = to_dot(graph)
    assert dot.startswith("digraph tulle_map {") and dot.rstrip().endswith("}")
    for ns in ("frontend", "backend", "data"):
        assert f'subgraph "cluster_{ns}" {{' in dot
        assert f'label="namespace {ns}"' in dot
    assert '"frontend/web" [label="web\\nDeployment", shape=box' in dot
    assert '"svc:backend/catalog" [label="catalog\\nService", shape=ellipse' in dot
    assert '"world" [label="world", shape=doubleoctagon' in dot
    edge = next(ln for ln in dot.splitlines() if '"frontend/web" -> "data/db"' in ln)
    assert 'label="0.07 conn/s\\nerr 100%\\ndropped: POLICY_DENIED"' in edge
    assert 'color="#d32f2f"' in edge
    edge = next(ln for ln in dot.splitlines()
                if '"frontend/web" -> "svc:backend/catalog"' in ln)
    assert 'label="5.00 req/s\\nerr 1%\\np99 30ms"' in edge
    assert 'color="#ef8c00"' in edge  # orange: some errors
    edge = next(ln for ln in dot.splitlines() if '"host" -> "frontend/web"' in ln)
    assert 'color="#5b6b7f"' in edge  # no errors
    # the world is outside every namespace cluster
    world = dot.index('"world" [label=')
    assert all(world > dot.index(f'subgraph "cluster_{ns}"') for ns in ("frontend", "data"))


def test_dot_quoting() -> None:
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


def test_formats() -> None:
    assert format_latency(None) == "-"
    assert format_latency(850_000) == "850µs"
    assert format_latency(4_200_000) == "4.2ms"
    assert format_latency(42_000_000) == "42ms"
    assert format_latency(1_250_000_000) == "1.25s"
    assert format_window(300) == "5m"
    assert format_window(90) == "1m30s"
    assert format_window(5400) == "1h30m"
    assert format_window(2.5) == "2.5s"


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown image format"):
        render("digraph {}", "gif")


def test_render_explains_a_missing_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match="apt-get install graphviz"):
        render("digraph {}", "png")


@needs_dot
def test_render_reports_dot_errors() -> None:
    with pytest.raises(RenderError, match="dot -Tsvg"):
        render("digraph { this is not dot", "svg")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_dot
def test_png_render(graph: ServiceGraph) -> None:
    data = render(to_dot(graph), "png")
    width, height = png_size(data)
    assert width > 600 and height > 200  # seven nodes in three clusters, laid out
    assert len(data) > 20_000  # not a blank canvas


@needs_dot
def test_svg_render(graph: ServiceGraph) -> None:
    svg = render(to_dot(graph), "svg").decode()
    assert "<svg" in svg
    for text in ("namespace frontend", "catalog", "POLICY_DENIED", "5.00 req/s"):
        assert text in svg
