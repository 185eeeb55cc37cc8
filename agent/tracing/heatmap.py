"""Latency heatmaps over time for `tulle trace … --png FILE`: x is time (equal buckets),
y is the log2 bucket of the value (as `hist.bucket`: [2^i, 2^(i+1)) in the verb's unit),
colour is how many samples fell in the cell.

The core is pure and generic: `Heatmap.of` takes (timestamp ns, value) samples, whatever
they measure (connect latency, RTT, a request's time), and `samples` takes them from flows
with `tracefmt.value`, so a verb that gives its events a value there gets a heatmap too.
`render_png` draws one with Pillow (the one I/O-free drawing step; the caller writes the
bytes).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.flows.flow import Flow
from agent.tracing.hist import bucket, bucket_range

Sample = tuple[int, int]
"""(time in ns since the epoch, value in the verb's unit)."""

DEFAULT_COLUMNS = 60
MAX_COLUMNS = 600


class HeatmapError(ValueError):
    """Nothing to draw, or a bad size; the message says which."""


@dataclass(frozen=True)
class Heatmap:
    """``counts[row][column]``: samples in time bucket ``column`` (``start_ns +
    column * step_ns`` onwards) and value bucket ``low_row + row``."""

    start_ns: int
    step_ns: int
    low_row: int
    counts: tuple[tuple[int, ...], ...]

    @property
    def columns(self) -> int:
        return len(self.counts[0])

    @property
    def peak(self) -> int:
        return max(max(row) for row in self.counts)

    @property
    def total(self) -> int:
        return sum(sum(row) for row in self.counts)

    @classmethod
    def of(cls, samples: Iterable[Sample], columns: int = DEFAULT_COLUMNS) -> Heatmap:
        """Bin `samples` into at most `columns` equal time buckets of a round length
        (`nice_step`) from the first sample on. Negative values are refused."""
        if not 1 <= columns <= MAX_COLUMNS:
            raise HeatmapError(f"columns must be 1..{MAX_COLUMNS}, got {columns}")
        points = sorted(samples)
        if not points:
            raise HeatmapError("no samples: nothing to draw")
        bad = next((v for _, v in points if v < 0), None)
        if bad is not None:
            raise HeatmapError(f"a sample has a negative value ({bad})")
        start, end = points[0][0], points[-1][0]
        step = nice_step(-(-(end - start + 1) // columns))  # ceil: the last sample fits
        width = (end - start) // step + 1
        rows = [bucket(v) for _, v in points]
        low, high = min(rows), max(rows)
        grid = [[0] * width for _ in range(high - low + 1)]
        for (t, _), row in zip(points, rows, strict=True):
            grid[row - low][(t - start) // step] += 1
        return cls(start, step, low, tuple(tuple(r) for r in grid))


def nice_step(ns: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten (ns) that is at least `ns`, so columns
    read as round durations (2s, 500ms…)."""
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale >= ns:
                return m * scale
        scale *= 10


def samples(flows: Iterable[Flow], value: Callable[[Flow], int | None]) -> list[Sample]:
    """(flow time, value) of every flow `value` gives a number for, e.g.
    ``functools.partial(tracefmt.value, "rtt")``."""
    out: list[Sample] = []
    for flow in flows:
        v = value(flow)
        if v is not None:
            out.append((flow.time, int(v)))
    return out


# -- drawing ---------------------------------------------------------------------------------

CELL_W, CELL_H = 12, 16
LEFT, TOP, RIGHT, BOTTOM = 130, 34, 110, 44
# Light to dark (counts on a log scale, so one sample is visible beside thousands).
PALETTE: Sequence[tuple[int, int, int]] = (
    (255, 245, 235), (254, 230, 206), (253, 208, 162), (253, 174, 107), (253, 141, 60),
    (241, 105, 19), (217, 72, 1), (166, 54, 3), (127, 39, 4),
)
EMPTY = (248, 248, 248)
INK = (40, 40, 40)


def colour(count: int, peak: int) -> tuple[int, int, int]:
    """The cell colour of `count` where the busiest cell holds `peak` (log scale)."""
    if count <= 0:
        return EMPTY
    if peak <= 1:
        return PALETTE[-1]
    share = (count.bit_length() - 1) / max(1, peak.bit_length() - 1)
    return PALETTE[min(len(PALETTE) - 1, round(share * (len(PALETTE) - 1)))]


def _clock(ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ns // 1_000_000_000))


def _span(ns: int) -> str:
    seconds = ns / 1e9
    return f"{seconds:.3g}s" if seconds < 120 else f"{seconds / 60:.3g}min"


def render_png(heatmap: Heatmap, title: str, unit: str) -> bytes:
    """The heatmap as PNG bytes: value buckets up the left (in `unit`), UTC time along
    the bottom, a count legend on the right."""
    from PIL import Image, ImageDraw, ImageFont

    unit = unit.replace("µ", "u")  # Pillow's built-in font has no µ
    rows, cols = len(heatmap.counts), heatmap.columns
    width = LEFT + cols * CELL_W + RIGHT
    height = TOP + rows * CELL_H + BOTTOM
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    peak = heatmap.peak
    draw.text((LEFT, 8), f"{title} ({heatmap.total} samples)", fill=INK, font=font)
    for r, row in enumerate(heatmap.counts):
        y = TOP + (rows - 1 - r) * CELL_H  # the lowest bucket at the bottom
        for c, count in enumerate(row):
            x = LEFT + c * CELL_W
            draw.rectangle((x, y, x + CELL_W - 1, y + CELL_H - 1), fill=colour(count, peak))
        lo, hi = bucket_range(heatmap.low_row + r)
        draw.text((6, y + 2), f"{lo}-{hi} {unit}", fill=INK, font=font)
    base = TOP + rows * CELL_H + 4
    end_ns = heatmap.start_ns + cols * heatmap.step_ns
    draw.text((LEFT, base), _clock(heatmap.start_ns) + " UTC", fill=INK, font=font)
    right_label = f"{_clock(end_ns)} (+{_span(end_ns - heatmap.start_ns)})"
    draw.text((max(LEFT, LEFT + cols * CELL_W - 110), base + 14), right_label, fill=INK,
              font=font)
    draw.text((LEFT, base + 28), f"time, {_span(heatmap.step_ns)} per column", fill=INK,
              font=font)
    lx = LEFT + cols * CELL_W + 16
    draw.text((lx, TOP - 14), "count", fill=INK, font=font)
    for i, fill in enumerate(PALETTE):
        y = TOP + i * CELL_H
        draw.rectangle((lx, y, lx + CELL_W - 1, y + CELL_H - 1), fill=fill)
    draw.text((lx + CELL_W + 4, TOP + 2), "1", fill=INK, font=font)
    draw.text((lx + CELL_W + 4, TOP + (len(PALETTE) - 1) * CELL_H + 2), str(peak), fill=INK,
              font=font)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def draw(verb: str, flows: Iterable[Flow], columns: int = DEFAULT_COLUMNS) -> bytes:
    """The PNG of `tulle trace <verb> --png`: the verb's values (`tracefmt.value`) over
    time. HeatmapError when no event of the verb carries a value."""
    from agent.tracing import tracefmt

    points = samples(flows, functools.partial(tracefmt.value, verb))
    if not points:
        raise HeatmapError(f"no {verb} events with a value to draw")
    unit = tracefmt.UNITS.get(verb, "").split(" ")[-1] or "value"
    return render_png(Heatmap.of(points, columns), f"tulle trace {verb}", unit)
