"""The arithmetic of bench-mtls (pure): the open-loop schedule, percentiles, added latency,
CPU per 1,000 requests/s.

The fixed-rate client follows wrk2's model: `connections` keep-alive connections share the
rate, each on its own clock-driven schedule, and a request's latency runs from its *intended*
send time, so a slow answer that delays the next send is counted against the path instead of
being hidden (coordinated omission).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

PERCENTILES = (50.0, 90.0, 99.0)


class StatsError(ValueError):
    """Arithmetic asked of impossible inputs (no samples, a rate of zero, ...)."""


# -- the open-loop schedule ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Schedule:
    rate: float  # requests/s over all connections
    connections: int
    seconds: float  # warm-up + measured

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise StatsError(f"rate must be a positive number of requests/s, got {self.rate}")
        if self.connections < 1:
            raise StatsError(f"connections must be >= 1, got {self.connections}")
        if not self.seconds > 0:
            raise StatsError(f"seconds must be > 0, got {self.seconds}")

    @property
    def interval(self) -> float:
        """Seconds between two sends on one connection."""
        return self.connections / self.rate

    def offset(self, connection: int, index: int) -> float:
        """Seconds after the start at which `connection` sends its `index`-th request: the
        global sequence is spread round-robin, so request n = connection + index * connections
        goes out at n / rate and the union of all connections is evenly spaced."""
        if not 0 <= connection < self.connections:
            raise StatsError(f"connection {connection} outside 0..{self.connections - 1}")
        if index < 0:
            raise StatsError(f"index must be >= 0, got {index}")
        return (connection + index * self.connections) / self.rate

    def count(self, connection: int) -> int:
        """Requests `connection` sends: those whose offset falls before `seconds`."""
        if not 0 <= connection < self.connections:
            raise StatsError(f"connection {connection} outside 0..{self.connections - 1}")
        first = connection / self.rate
        if first >= self.seconds:
            return 0
        return math.ceil((self.seconds - first) / self.interval - 1e-9)

    def total(self) -> int:
        return sum(self.count(c) for c in range(self.connections))


# -- percentiles -----------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the value at rank ceil(q/100 * n)), as HdrHistogram and wrk
    report: always an observed sample, never an interpolation between two."""
    if not sorted_values:
        raise StatsError("no samples")
    if not 0 < q <= 100:
        raise StatsError(f"percentile must be in (0, 100], got {q}")
    rank = max(1, math.ceil(q / 100 * len(sorted_values) - 1e-9))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(latencies_ms: Sequence[float]) -> Latency:
    values = sorted(latencies_ms)
    p50, p90, p99 = (percentile(values, q) for q in PERCENTILES)
    return Latency(len(values), round(p50, 4), round(p90, 4), round(p99, 4), round(values[-1], 4))


def added(mode: Latency, baseline: Latency) -> dict[str, float]:
    """What a path adds over the plaintext kernel path, percentile by percentile (the way
    Istio's figures are stated). Negative values are possible under noise and kept."""
    return {
        f"p{int(q)}_ms": round(
            getattr(mode, f"p{int(q)}_ms") - getattr(baseline, f"p{int(q)}_ms"), 4
        )
        for q in PERCENTILES
    }


def measured(
    samples: Sequence[tuple[float, float, float]],
    warmup: float,
) -> tuple[list[float], list[float]]:
    """From (intended offset s, sent offset s, done offset s) samples, those intended at or
    after the warm-up: (latency ms from the intended time, send lag ms: sent - intended)."""
    lat, lag = [], []
    for intended, sent, done in samples:
        if intended < warmup:
            continue
        if done < sent or sent < intended - 1e-6:
            raise StatsError(f"sample out of order: intended {intended}, sent {sent}, done {done}")
        lat.append((done - intended) * 1000)
        lag.append((sent - intended) * 1000)
    return lat, lag


# -- CPU -------------------------------------------------------------------------------------
def cpu_per_krps(cpu_seconds: float, requests: int) -> float:
    """vCPU per 1,000 requests/s: (CPU-s / wall-s) / (requests / wall-s / 1000), i.e. the
    CPU-seconds spent per 1,000 requests; the wall time cancels out."""
    if requests <= 0:
        raise StatsError(f"no requests to divide the CPU by (got {requests})")
    if cpu_seconds < 0:
        raise StatsError(f"negative CPU time {cpu_seconds}: the process restarted mid-run")
    return cpu_seconds * 1000 / requests


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference
