"""The latency heatmap of `tulle trace … --png`: binning (pure), colours, the PNG, the CLI."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image

from agent.cli.trace import trace
from agent.flows.store import FlowRing
from agent.observer.server import ObserverServer
from agent.tracing import tracefmt
from agent.tracing.heatmap import (
    CELL_H,
    CELL_W,
    EMPTY,
    LEFT,
    PALETTE,
    TOP,
    Heatmap,
    HeatmapError,
    colour,
    draw,
    render_png,
    samples,
)
from tests.unit.flows.samples import T0, kernel_drop, tcp_close

S = 1_000_000_000


def test_binning_golden() -> None:
    """Time into equal columns from the first to the last sample; values into log2 rows
    (bucket 5 is 32..63, bucket 7 is 128..255) from the lowest to the highest seen."""
    points = [(0, 40), (1 * S, 40), (1 * S, 50), (5 * S, 200), (9 * S, 130), (9 * S, 33)]
    h = Heatmap.of(points, columns=5)
    assert (h.start_ns, h.step_ns, h.low_row, h.columns) == (0, 2 * S, 5, 5)
    assert h.counts == (
        (3, 0, 0, 0, 1),  # 32..63
        (0, 0, 0, 0, 0),  # 64..127: empty rows stay, so the y axis is even
        (0, 0, 1, 0, 1),  # 128..255
    )
    assert (h.total, h.peak) == (6, 3)


def test_one_instant_and_zero_values() -> None:
    h = Heatmap.of([(T0, 0), (T0, 1)])
    assert h.counts == ((2,),) and h.low_row == 0


@pytest.mark.parametrize(("points", "columns", "message"), [
    ([], 10, "no samples"),
    ([(0, -1)], 10, "negative value"),
    ([(0, 1)], 0, "columns must be"),
    ([(0, 1)], 10_000, "columns must be"),
])
def test_bad_input_is_refused_by_name(points: list[tuple[int, int]], columns: int,
                                      message: str) -> None:
    with pytest.raises(HeatmapError, match=message):
        Heatmap.of(points, columns)


def test_colours_rise_with_count_on_a_log_scale() -> None:
    assert colour(0, 100) == EMPTY
    assert colour(1, 1) == PALETTE[-1]
    assert colour(1, 1024) == PALETTE[0] and colour(1024, 1024) == PALETTE[-1]
    shades = [PALETTE.index(colour(n, 1024)) for n in (1, 8, 64, 1024)]
    assert shades == sorted(shades) and len(set(shades)) == 4


def test_samples_are_generic_over_the_verb_value() -> None:
    flows = [tcp_close(T0, connect_ns=120_000, srtt_mean_us=40), tcp_close(T0 + S, connect_ns=0),
             kernel_drop()]
    assert samples(flows, functools.partial(tracefmt.value, "connect")) == [(T0, 120)]
    assert samples(flows, functools.partial(tracefmt.value, "rtt")) == [(T0, 40), (T0 + S, 40)]
    # Any (flow -> value) works, e.g. a request's total time.
    assert samples(flows, lambda f: f.time - T0) == [(T0, 0), (T0 + S, S), (kernel_drop().time, 10_000_000)]


def test_png_cells_have_the_counts_colour() -> None:
    h = Heatmap.of([(0, 40)] * 4 + [(9 * S, 200)], columns=10)
    img = Image.open(io.BytesIO(render_png(h, "rtt", "µs")))
    assert img.format == "PNG"
    rows = len(h.counts)
    assert img.size[0] > LEFT + 10 * CELL_W and img.size[1] > TOP + rows * CELL_H

    def cell(row: int, col: int) -> tuple[int, int, int]:
        y = TOP + (rows - 1 - row) * CELL_H + CELL_H // 2
        return img.getpixel((LEFT + col * CELL_W + CELL_W // 2, y))  # type: ignore[return-value]

    assert cell(0, 0) == colour(4, 4) == PALETTE[-1]  # the lowest bucket is drawn at the bottom
    assert cell(rows - 1, 9) == colour(1, 4)
    assert cell(1, 5) == EMPTY


def test_draw_refuses_events_without_values() -> None:
    with pytest.raises(HeatmapError, match="no drops events with a value"):
        draw("drops", [kernel_drop()])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    ring = FlowRing(100)
    ring.put_many([tcp_close(T0 + i * S, srtt_mean_us=10 * (i + 1)) for i in range(6)])
    node = ObserverServer(ring, "node-1", tcp_address=None, unix_socket=tmp_path / "n.sock")
    node.start()
    yield node.targets[0]
    node.stop(grace=0)


@click.group()
def cli() -> None:
    """Stand-in for agent.cli.main's group."""


cli.add_command(trace)


def test_cli_writes_the_png_of_every_stored_event(server: str, tmp_path: Path) -> None:
    out = tmp_path / "rtt.png"
    result = CliRunner().invoke(cli, ["trace", "rtt", "--server", server, "--png", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and "(6 rtt events)" in result.stderr
    assert Image.open(out).format == "PNG"


def test_cli_names_the_problem_and_writes_nothing(server: str, tmp_path: Path) -> None:
    out = tmp_path / "drops.png"
    result = CliRunner().invoke(cli, ["trace", "drops", "--server", server, "--png", str(out)])
    assert result.exit_code == 1 and not out.exists()
    assert f"--png {out}: no drops events with a value to draw; nothing written" in result.stderr
    bad = tmp_path / "missing" / "x.png"
    result = CliRunner().invoke(cli, ["trace", "rtt", "--server", server, "--png", str(bad)])
    assert result.exit_code == 1 and "cannot write it: No such file or directory" in result.stderr


def test_columns_are_round_durations() -> None:
    from agent.tracing.heatmap import nice_step

    assert [nice_step(n) for n in (0, 1, 3, 7, 11, 1_800_000_001)] == [1, 1, 5, 10, 20, 2 * S]
