"""Prometheus families for the waypoint's resilience state, read at scrape time:

- ``tulle_waypoint_outlier_ejections_total{backend}`` (counter) and
  ``tulle_waypoint_outlier_ejections_active{backend}`` (gauge): Envoy's
  ``outlier_detection.ejections_enforced_total`` and ``ejections_active``;
- ``tulle_waypoint_upstream_overflow_total{backend}`` (counter): requests and retries refused
  by the pool limits (Envoy's ``upstream_rq_pending_overflow`` and ``_retry_overflow``);
- ``tulle_waypoint_retry_budget_exhausted_total{backend}`` (counter): retries the GEP-3388
  retry budget refused (Envoy's ``upstream_rq_retry_overflow`` for its retry budget).

Counts restart when a backend's policy changes (its state is made anew).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from l7proxy.resilience.state import Resilience


class ResilienceCollector(Collector):
    def __init__(self, resilience: Resilience) -> None:
        self.resilience = resilience

    def collect(self) -> Iterator[Metric]:
        ejections = CounterMetricFamily(
            "tulle_waypoint_outlier_ejections", "Endpoints ejected, by backend", labels=["backend"]
        )
        active = GaugeMetricFamily(
            "tulle_waypoint_outlier_ejections_active", "Endpoints ejected now, by backend",
            labels=["backend"],
        )
        overflow = CounterMetricFamily(
            "tulle_waypoint_upstream_overflow",
            "Requests and retries refused by connection-pool limits, by backend",
            labels=["backend"],
        )
        exhausted = CounterMetricFamily(
            "tulle_waypoint_retry_budget_exhausted",
            "Retries refused by the retry budget, by backend",
            labels=["backend"],
        )
        for (ns, name, port), backend in list(self.resilience.backends.items()):
            label = [f"{ns}/{name}:{port}"]
            if backend.outliers is not None:
                ejections.add_metric(label, backend.ejections)
                hosts = backend.outliers.hosts.values()
                active.add_metric(label, sum(h.ejected_until is not None for h in hosts))
            if backend.limits is not None:
                overflow.add_metric(label, backend.limits.overflows)
            if backend.budget is not None:
                exhausted.add_metric(label, backend.budget.denied)
        yield ejections
        yield active
        yield overflow
        yield exhausted
