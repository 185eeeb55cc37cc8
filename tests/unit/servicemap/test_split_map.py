"""`tulle map --color-by latency-part`: edges coloured by where their requests' time went,
from the waypoint's request split, in the text, DOT and image renderers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.servicemap import map_cmd
from agent.flows.codec import envelope
from agent.servicemap import build_graph, render_text, to_dot
from agent.servicemap.dot import PART_COLORS
from tests.unit.servicemap.test_render import PNG_MAGIC, needs_dot
from tests.unit.tracing.test_request_printers import FLOW, RECORD, flow_of

# FLOW: 17.9 ms backend of 20.34 ms (88%). SLOW_CONNECT: 15 ms of connect (74%).
SLOW_CONNECT = flow_of((*RECORD[:13], (40, 15_000_000, 15_000_000, 0, 16_000_000, 16_000_000,
                                       16_100_000, 100), None))  # type: ignore[arg-type]


def test_the_edge_sums_the_parts_of_its_requests() -> None:
    graph = build_graph([FLOW, FLOW])
    edge = graph.edge("shop/web", "svc:shop/echo")  # client first: not reversed
    assert edge.requests == 2 and edge.split_requests == 2
    assert edge.split_sum_ns == (80_000, 600_000, 4_000_000, 200_000, 35_800_000)
    assert edge.dominant_part == ("backend", pytest.approx(35_800_000 / 40_680_000))


def test_text_names_and_colours_the_dominant_part() -> None:
    graph = build_graph([FLOW])
    plain = render_text(graph)
    assert "time " not in plain  # the default output is unchanged
    text = render_text(graph, color_by="latency-part")
    assert "time: client net, waypoint, connect, upstream net, backend" in text
    assert "time backend 88%" in text
    painted = render_text(graph, color=True, color_by="latency-part")
    assert "\x1b[32mtime backend 88%" in painted
    connect = render_text(build_graph([SLOW_CONNECT]), color_by="latency-part")
    assert "time connect 74%" in connect


def test_dot_colours_the_edge_by_its_dominant_part() -> None:
    dot = to_dot(build_graph([FLOW]), color_by="latency-part")
    assert f'color="{PART_COLORS["backend"]}"' in dot
    assert "time: backend 88%" in dot
    assert "edges coloured by where most request time went" in dot
    dot = to_dot(build_graph([SLOW_CONNECT]), color_by="latency-part")
    assert f'color="{PART_COLORS["upstream_connect"]}"' in dot
    with pytest.raises(ValueError, match="unknown colouring 'rainbow'"):
        to_dot(build_graph([FLOW]), color_by="rainbow")


def test_an_edge_without_a_split_stays_grey() -> None:
    dot = to_dot(build_graph([flow_of((*RECORD[:13], None, None))]),  # type: ignore[arg-type]
                 color_by="latency-part")
    assert 'color="#5b6b7f"' in dot and "time:" not in dot.split("\n", 4)[-1]


def test_cli_colours_by_latency_part(tmp_path: Path) -> None:
    path = tmp_path / "flows.json"
    path.write_text("".join(json.dumps(envelope(f)) + "\n" for f in (FLOW, SLOW_CONNECT)))
    result = CliRunner().invoke(map_cmd, ["--input-file", str(path), "--color-by",
                                          "latency-part"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "-> svc shop/echo" in result.stdout and "time backend" in result.stdout
    bad = CliRunner().invoke(map_cmd, ["--input-file", str(path), "--color-by", "rainbow"])
    assert bad.exit_code == 2 and "rainbow" in bad.output


@needs_dot
def test_png_by_latency_part(tmp_path: Path) -> None:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(envelope(FLOW)) + "\n")
    out = tmp_path / "map.png"
    result = CliRunner().invoke(map_cmd, ["--input-file", str(path), "--color-by",
                                          "latency-part", "-o", "png", "--output", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(PNG_MAGIC)
