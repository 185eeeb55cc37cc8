"""What one benchmark run measured (plain data, JSON-ready)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.l7.wrk import WrkResult


@dataclass
class Measurement:
    peer: str
    """"tulle", "envoy" or "nginx" (the backend alone)."""
    variant: str
    """What is on: "flows unix (agent sink) + metrics", "access log + stats", ..."""
    round: int
    """1, 2, ... for the side-by-side rounds; 0 for diagnostics."""
    wrk: WrkResult
    peer_cpu: float | None
    """The peer's CPU (all threads) during the measurement, in cores (1.0: its core)."""
    peer_user_share: float | None
    """Of that CPU, the share in user space (the rest is the kernel: syscalls, TCP)."""
    cores_busy: dict[int, float]
    counted: int | None = None
    """Requests the peer itself counted during the measurement (metrics / stats)."""

    @property
    def rps_per_core(self) -> float | None:
        """RPS per CPU-second the peer used: comparable when a core was not all its own."""
        if not self.peer_cpu:
            return None
        return self.wrk.rps / self.peer_cpu

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["wrk"] = self.wrk.to_json()
        out["rps_per_core"] = self.rps_per_core
        return out


@dataclass
class RoundRatio:
    round: int
    rps: float
    """Tulle RPS / Envoy RPS (target >= 1.5)."""
    p99: float
    """Tulle p99 / Envoy p99 (target <= 1.0)."""
    rps_per_core: float | None
    """The RPS ratio per CPU-second each used."""
    p50: float

    @property
    def met(self) -> bool:
        return self.rps >= 1.5 and self.p99 <= 1.0


@dataclass
class ProbeResult:
    path: str
    headers: list[tuple[str, str]]
    expected: str | None
    tulle: tuple[int, str | None]
    envoy: tuple[int, str | None]

    @property
    def agree(self) -> bool:
        want = 200 if self.expected else 404
        return (
            self.tulle == (want, self.expected) and self.envoy == (want, self.expected)
        )


@dataclass
class RunResult:
    date: str
    started: str
    setup: dict[str, Any]
    machine: dict[str, Any]
    table: dict[str, Any]
    probes: list[ProbeResult]
    measurements: list[Measurement]
    ratios: list[RoundRatio]
    diagnostics: list[Measurement]
    flows: dict[str, Any]
    profile: dict[str, Any] | None = None
    syscalls: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def met(self) -> bool:
        return bool(self.ratios) and all(r.met for r in self.ratios)

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "target": {"rps_ratio_min": 1.5, "p99_ratio_max": 1.0, "met": self.met},
            "setup": self.setup,
            "machine": self.machine,
            "table": self.table,
            "probes": [
                {**asdict(p), "agree": p.agree} for p in self.probes
            ],
            "measurements": [m.to_json() for m in self.measurements],
            "ratios": [{**asdict(r), "met": r.met} for r in self.ratios],
            "diagnostics": [m.to_json() for m in self.diagnostics],
            "flows": self.flows,
            "profile": self.profile,
            "syscalls": self.syscalls,
            "problems": self.problems,
        }


def ratio(round_: int, tulle: Measurement, envoy: Measurement) -> RoundRatio:
    """One round's Tulle/Envoy ratios, from the two peers' measurements."""
    per_core = (
        tulle.rps_per_core / envoy.rps_per_core
        if tulle.rps_per_core and envoy.rps_per_core else None
    )
    return RoundRatio(
        round=round_,
        rps=round(tulle.wrk.rps / envoy.wrk.rps, 3),
        p99=round(tulle.wrk.p99_ms / envoy.wrk.p99_ms, 3),
        rps_per_core=round(per_core, 3) if per_core else None,
        p50=round(tulle.wrk.p50_ms / envoy.wrk.p50_ms, 3),
    )
