"""py-spy's raw (collapsed-stack) output, summed into the frames where time goes (pure).

Each line is ``root (file);caller (file);...;leaf (file) COUNT`` (``--nolineno``). A frame's
*self* share counts the samples where it is the leaf (for a frame that calls into C, such as
the ring-buffer poll, that includes the C time); its *total* share counts the samples where
it is anywhere on the stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    name: str  # "function (short/path.py)"
    self_pct: float
    total_pct: float


def short_frame(frame: str) -> str:
    """``f (/long/path/to/pkg/mod.py)`` -> ``f (pkg/mod.py)``."""
    name, sep, rest = frame.rpartition(" (")
    if not sep:
        return frame.strip()
    path = rest.rstrip(")")
    parts = path.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """(stack root-first, count) per line; lines that are not stacks are skipped."""
    out: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append(([short_frame(f) for f in stack.split(";")], int(count)))
    return out


def _keep(text: str, within: str | None) -> list[tuple[list[str], int]]:
    return [(s, c) for s, c in parse_raw(text) if within is None or within in s]


def top_frames(text: str, n: int = 10, within: str | None = None) -> tuple[list[Frame], int]:
    """The `n` frames with the most self time, and the number of samples; only the stacks
    that pass through frame `within` when given (other threads are left out)."""
    stacks = _keep(text, within)
    total = sum(c for _, c in stacks)
    if total == 0:
        return [], 0
    self_count: dict[str, int] = {}
    incl: dict[str, int] = {}
    for stack, count in stacks:
        self_count[stack[-1]] = self_count.get(stack[-1], 0) + count
        for frame in set(stack):
            incl[frame] = incl.get(frame, 0) + count
    ranked = sorted(self_count, key=lambda f: -self_count[f])[:n]
    return [Frame(f, round(100 * self_count[f] / total, 1), round(100 * incl[f] / total, 1))
            for f in ranked], total


def inclusive(text: str, frames: list[str], within: str | None = None) -> dict[str, float]:
    """Total share (% of samples) of each of `frames`, given as ``func (pkg/mod.py)``."""
    stacks = _keep(text, within)
    total = sum(c for _, c in stacks) or 1
    out = dict.fromkeys(frames, 0)
    for stack, count in stacks:
        present = set(stack)
        for frame in frames:
            if frame in present:
                out[frame] += count
    return {k: round(100 * v / total, 1) for k, v in out.items()}
