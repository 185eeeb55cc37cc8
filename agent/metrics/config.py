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
    "policy_verdicts": ("direction", "match", "action"),
    "http_requests": ("method", "protocol", "code", "reporter", "source_workload",
                      "destination_workload"),
    "http_request_duration_seconds": ("method", "reporter", "source_workload",
                                      "destination_workload"),
    "tcp_connect_duration_seconds": ("source_workload", "destination_workload"),
    "tcp_rtt_seconds": ("source_workload", "destination_workload"),
    "tcp_retransmits": ("source_workload", "destination_workload"),
    "kernel_drops": ("reason", "direction"),
    "request_split_seconds": ("part", "source_workload", "destination_workload"),
    "encrypted_flows": ("type", "subtype", "verdict"),
    "tunnel_refused": ("reason", "side"),
}

# Families that Hubble also exports; `MetricsConfig.hubble_names` exposes them as
# ``hubble_<family>`` with Hubble's label names, so Hubble's dashboards and alerts work.
HUBBLE_FAMILIES = frozenset({
    "flows_processed", "drop", "tcp_flags", "policy_verdicts", "http_requests",
    "http_request_duration_seconds", "lost_events",
})
HUBBLE_LABELS = {"code": "status"}  # Tulle's label -> Hubble's (httpV2's ``status``)
# Labels only Hubble's names carry by default (Hubble's policy and httpV2 handlers), so
# Tulle's own series keep their label sets; a family's ``labels`` setting may still ask for
# them. Each takes a handful of fixed values: ``match`` Hubble's policy match types
# ("none", "l3-l4", "l7/http"…), ``protocol`` the HTTP version, ``reporter`` client/server.
HUBBLE_ONLY_LABELS: dict[str, frozenset[str]] = {
    "policy_verdicts": frozenset({"match"}),
    "http_requests": frozenset({"protocol", "reporter"}),
    "http_request_duration_seconds": frozenset({"reporter"}),
}

# HTTP latencies through a node-local waypoint are often sub-millisecond, so the buckets
# start lower than Prometheus' defaults (5ms).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

# Kernel TCP times: RTTs between pods on one node are tens of microseconds, a SYN lost
# once costs a second (the kernel's initial RTO), so the buckets span both.
DEFAULT_TCP_BUCKETS: tuple[float, ...] = (
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
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

    tcp_connect_buckets: tuple[float, ...] = DEFAULT_TCP_BUCKETS
    """Upper bounds, in seconds, of `tulle_tcp_connect_duration_seconds`."""

    tcp_rtt_buckets: tuple[float, ...] = DEFAULT_TCP_BUCKETS
    """Upper bounds, in seconds, of `tulle_tcp_rtt_seconds`."""

    request_split_buckets: tuple[float, ...] = DEFAULT_TCP_BUCKETS
    """Upper bounds, in seconds, of `tulle_request_split_seconds` (parts run from tens of
    microseconds, a pod-to-pod RTT, to seconds, a slow backend)."""

    hubble_names: bool = False
    """Expose the families Hubble also has (`HUBBLE_FAMILIES`) under Hubble's metric and
    label names (``hubble_http_requests_total{status}``…) instead of Tulle's."""

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
        for what in ("http_duration_buckets", "tcp_connect_buckets", "tcp_rtt_buckets",
                     "request_split_buckets"):
            bounds = getattr(self, what)
            if not bounds or any(b <= a for a, b in zip(bounds, bounds[1:], strict=False)):
                raise ValueError(f"metrics config: {what} must be increasing")

    def family(self, name: str) -> FamilyConfig:
        return self.families.get(name) or FamilyConfig()

    def metric_name(self, name: str, suffix: str = "_total") -> str:
        """The exposed name of family `name`: ``tulle_…`` or, with `hubble_names`, Hubble's."""
        prefix = "hubble_" if self.hubble_names and name in HUBBLE_FAMILIES else "tulle_"
        return f"{prefix}{name}{suffix}"

    def exposed_labels(self, name: str) -> tuple[str, ...]:
        """`labels_of`, renamed to Hubble's label names when `hubble_names` applies."""
        labels = self.labels_of(name)
        if self.hubble_names and name in HUBBLE_FAMILIES:
            return tuple(HUBBLE_LABELS.get(lb, lb) for lb in labels)
        return labels

    def labels_of(self, name: str) -> tuple[str, ...]:
        """The labels `name` exposes, in the family's order: the configured ones, else all
        (without `HUBBLE_ONLY_LABELS` unless `hubble_names` applies to the family)."""
        keep = self.family(name).labels
        full = FAMILY_LABELS[name]
        if keep is not None:
            return tuple(lb for lb in full if lb in keep)
        if self.hubble_names and name in HUBBLE_FAMILIES:
            return full
        hubble_only = HUBBLE_ONLY_LABELS.get(name, frozenset())
        return tuple(lb for lb in full if lb not in hubble_only)

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
        for what in ("http_duration_buckets", "tcp_connect_buckets", "tcp_rtt_buckets",
                     "request_split_buckets"):
            if what in kwargs:
                kwargs[what] = tuple(float(b) for b in kwargs[what])
        if "hubble_names" in kwargs and not isinstance(kwargs["hubble_names"], bool):
            raise ValueError("metrics config: hubble_names must be true or false, "
                             f"got {kwargs['hubble_names']!r}")
        return cls(**kwargs)
