"""The result of a Tulle-vs-Envoy side-by-side of one kind of work (gRPC unary calls,
TCPRoute connections) and its Markdown (pure): the command, the setup, each measurement,
the ratio per round and the target (Tulle at least 1.5x Envoy's rate)."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from bench.l7.results import Measurement

TARGET = 1.5


@dataclass
class PairRatio:
    round: int
    rate: float
    """Tulle's rate / Envoy's (target >= 1.5)."""
    per_core: float | None
    """The same per CPU-second each peer used."""
    p99: float | None

    @property
    def met(self) -> bool:
        return self.rate >= TARGET


def pair_ratio(round_: int, tulle: Measurement, envoy: Measurement) -> PairRatio:
    if not envoy.wrk.rps:
        raise ValueError(f"round {round_}: Envoy measured no {tulle.variant!r} at all")
    per_core = (tulle.rps_per_core / envoy.rps_per_core
                if tulle.rps_per_core and envoy.rps_per_core else None)
    p99 = tulle.wrk.p99_ms / envoy.wrk.p99_ms if envoy.wrk.p99_ms else None
    return PairRatio(round_, round(tulle.wrk.rps / envoy.wrk.rps, 3),
                     round(per_core, 3) if per_core else None,
                     round(p99, 3) if p99 else None)


def drops(measurements: list[Measurement]) -> list[str]:
    """A peer whose rate in a later round fell under half its first round's: a run that
    changed under the load (stalled connections, reused ports, a neighbour) rather than a
    rate, to be read before any ratio."""
    first: dict[str, Measurement] = {}
    out = []
    for m in measurements:
        base = first.setdefault(m.peer, m)
        if m is not base and m.wrk.rps < base.wrk.rps / 2:
            busy = ", ".join(f"core {c} {b:.0%}" for c, b in sorted(m.cores_busy.items()))
            out.append(f"{m.peer} round {m.round}: {m.wrk.rps:,.0f} against "
                       f"{base.wrk.rps:,.0f} in round {base.round} ({busy} busy): the rate "
                       "is not stable; read the ratios with care")
    return out


@dataclass
class PairResult:
    title: str
    unit: str
    """"calls/s", "connections/s"."""
    date: str
    started: str
    command: str
    label: str
    """"busy-smoke", "" (a quiet run): what the numbers may be taken for."""
    setup: dict[str, Any]
    machine: dict[str, Any]
    checks: list[dict[str, Any]]
    """What was verified before measuring: both peers do the same work."""
    measurements: list[Measurement]
    ratios: list[PairRatio]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mean_ratio(self) -> float:
        return round(mean(r.rate for r in self.ratios), 3) if self.ratios else 0.0

    @property
    def met(self) -> bool:
        return bool(self.ratios) and all(r.met for r in self.ratios)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title, "unit": self.unit, "date": self.date,
            "started": self.started, "command": self.command, "label": self.label,
            "seconds": round(self.seconds, 1),
            "target": {"ratio_min": TARGET, "met": self.met, "mean_ratio": self.mean_ratio},
            "setup": self.setup, "machine": self.machine, "checks": self.checks,
            "measurements": [m.to_json() for m in self.measurements],
            "ratios": [{"round": r.round, "rate": r.rate, "per_core": r.per_core,
                        "p99": r.p99, "met": r.met} for r in self.ratios],
            "problems": self.problems,
        }


def markdown(result: PairResult, name: str) -> str:
    lines = [f"# {result.title} ({name})", ""]
    if result.label:
        lines += [f"**{result.label}**: measured on a busy shared machine, to show the "
                  "benchmark works; its numbers are not a result.", ""]
    lines += [
        f"Command: `{result.command}` ({result.started}, {result.seconds:.0f} s).",
        "",
        f"**Target**: Tulle at least {TARGET}x Envoy's {result.unit} in every round: "
        f"**{'met' if result.met else 'missed'}** (mean Tulle/Envoy {result.mean_ratio:.3f}).",
        "",
        "## Setup",
        "",
    ]
    for key, value in result.setup.items():
        lines.append(f"- {key}: `{value}`" if isinstance(value, list) else f"- {key}: {value}")
    lines += ["", "## Checks before measuring", ""]
    lines += [f"- {c['what']}: {'ok' if c['ok'] else 'FAILED'} ({c['detail']})"
              for c in result.checks]
    lines += [
        "",
        "## Measurements",
        "",
        f"| round | peer | {result.unit} | p50 ms | p99 ms | peer CPU | per core | errors "
        "| peer counted |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in result.measurements:
        per_core = f"{m.rps_per_core:,.0f}" if m.rps_per_core else "-"
        lines.append(
            f"| {m.round} | {m.peer} | {m.wrk.rps:,.0f} | {m.wrk.p50_ms:.2f} | "
            f"{m.wrk.p99_ms:.2f} | {m.peer_cpu if m.peer_cpu is not None else '-'} | "
            f"{per_core} | {m.wrk.errors} | {m.counted if m.counted is not None else '-'} |")
    lines += ["", "## Tulle / Envoy", "", "| round | rate | per core | p99 |", "|---|---|---|---|"]
    for r in result.ratios:
        lines.append(f"| {r.round} | {r.rate:.3f} | {r.per_core or '-'} | {r.p99 or '-'} |")
    lines += ["", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in result.machine.items()]
    if result.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in result.problems]
    return "\n".join(lines) + "\n"
