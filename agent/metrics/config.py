"""What the agent exports: metric families, their labels, and the cardinality bounds.

Each flow metric family has a fixed, full label set (`FAMILY_LABELS`). A deployment picks
a subset per family (drop the workload labels of the HTTP metrics on a big cluster, say):
labels left out are aggregated away, so their series are summed, not lost.

Cardinality is bounded twice per family:

- each label admits at most ``max_label_values`` distinct values; later values collapse
  into ``overflow_value`` (``"other"``);
- the family holds at most ``max_series`` label combinations; a new combination past that
  collapses into the series whose labels are all ``overflow_value``.

Every collapsed observation is counted in ``tulle_metrics_label_overflow_total{metric,label}``
(``label="*"`` for the series cap), so an operator sees when a bound bites.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AGENT_METRICS_PORT = 9965

# Family name (without the "tulle_" prefix and "_total" suffix) -> its full label set.
FAMILY_LABELS: dict[str, tuple[str, ...]] = {
    "flows_processed": ("type", "subtype", "verdict", "protocol"),
    "drop": ("reason", "protocol"),
    "tcp_flags": ("flag", "family"),
    "policy_verdicts": ("direction", "action"),
    "http_requests": ("method", "code", "source_workload", "destination_workload"),
    "http_request_duration_seconds": ("method", "source_workload", "destination_workload"),
}

# HTTP latencies through a node-local waypoint are often sub-millisecond, so the buckets
# start lower than Prometheus' defaults (5ms).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


@dataclass(frozen=True)
class FamilyConfig:
    """How one flow metric family is exported."""

    enabled: bool = True
    """False: the family is neither counted nor exposed."""

    labels: tuple[str, ...] | None = None
    """Labels to keep, a subset of the family's labels in `FAMILY_LABELS`, exposed in the
    family's own order; None keeps them all. Labels left out are summed away."""

    max_label_values: int | None = None
    """Distinct values admitted per label; None uses `MetricsConfig.max_label_values`."""

    max_series: int | None = None
    """Label combinations admitted; None uses `MetricsConfig.max_series`."""


@dataclass(frozen=True)
class MetricsConfig:
    """Settings of the agent's Prometheus metrics (`FlowMetrics` and `serve_metrics`)."""

    address: str = f":{AGENT_METRICS_PORT}"
    """Listen address of the metrics endpoint: "host:port", ":port" (all interfaces) or
    "[::1]:port". Port 0 picks a free port (tests)."""

    max_label_values: int = 64
    """Default cap on distinct values per label in one family."""

    max_series: int = 2000
    """Default cap on label combinations (series) in one family."""

    overflow_value: str = "other"
    """The label value that values past a cap collapse into."""

    http_duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS
    """Upper bounds, in seconds, of `tulle_http_request_duration_seconds` (+Inf is added)."""

    families: Mapping[str, FamilyConfig] = field(default_factory=dict)
    """Per-family settings by family name (keys of `FAMILY_LABELS`); absent families use
    the defaults: enabled, every label, the global caps."""

    def __post_init__(self) -> None:
        for name, fam in self.families.items():
            if name not in FAMILY_LABELS:
                raise ValueError(
                    f"metrics config: unknown family {name!r} "
                    f"(known: {', '.join(FAMILY_LABELS)})"
                )
            if fam.labels is not None:
                unknown = [lb for lb in fam.labels if lb not in FAMILY_LABELS[name]]
                if unknown:
                    raise ValueError(
                        f"metrics config: family {name!r} has no label {unknown[0]!r} "
                        f"(labels: {', '.join(FAMILY_LABELS[name])})"
                    )
            for what in ("max_label_values", "max_series"):
                value = getattr(fam, what)
                if value is not None and value < 1:
                    raise ValueError(f"metrics config: {name}.{what} must be >= 1, got {value}")
        if self.max_label_values < 1 or self.max_series < 1:
            raise ValueError("metrics config: max_label_values and max_series must be >= 1")
        if not self.overflow_value:
            raise ValueError("metrics config: overflow_value must not be empty")
        bounds = self.http_duration_buckets
        if not bounds or any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
            raise ValueError("metrics config: http_duration_buckets must be increasing")

    def family(self, name: str) -> FamilyConfig:
        return self.families.get(name) or FamilyConfig()

    def labels_of(self, name: str) -> tuple[str, ...]:
        """The labels `name` exposes, in the family's order."""
        keep = self.family(name).labels
        full = FAMILY_LABELS[name]
        return full if keep is None else tuple(lb for lb in full if lb in keep)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> MetricsConfig:
        """From the agent config's ``metrics:`` section (YAML-shaped dict), e.g.
        ``{"address": ":9965", "families": {"http_requests": {"labels": ["method", "code"]},
        "tcp_flags": {"enabled": False}}}``. Unknown keys raise ValueError naming them."""
        top = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - top
        if unknown:
            raise ValueError(f"metrics config: unknown key {sorted(unknown)[0]!r}")
        kwargs = dict(data)
        fams: dict[str, FamilyConfig] = {}
        for name, raw in (data.get("families") or {}).items():
            raw = dict(raw or {})
            bad = set(raw) - set(FamilyConfig.__dataclass_fields__)
            if bad:
                raise ValueError(f"metrics config: families.{name}: unknown key {sorted(bad)[0]!r}")
            if raw.get("labels") is not None:
                raw["labels"] = tuple(raw["labels"])
            fams[name] = FamilyConfig(**raw)
        kwargs["families"] = fams
        if "http_duration_buckets" in kwargs:
            buckets = kwargs["http_duration_buckets"]
            kwargs["http_duration_buckets"] = tuple(float(b) for b in buckets)
        return cls(**kwargs)
