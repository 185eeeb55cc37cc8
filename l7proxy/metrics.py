"""Prometheus metrics of one waypoint worker.

The hot path only bumps plain integers in a per-(route, backend, code) series found by
one dict lookup; no locks, no label parsing, no per-request allocation beyond the key
tuple. A ``prometheus_client`` collector turns the series into families at scrape time:

- ``tulle_waypoint_requests_total{route,backend,code}`` (counter)
- ``tulle_waypoint_request_duration_seconds{route,backend,code}`` (histogram)
- ``tulle_waypoint_requests_in_flight`` and ``tulle_waypoint_connections`` (gauges)
- ``tulle_waypoint_upstream_connections{state="open|idle"}`` (gauges) and
  ``tulle_waypoint_upstream_connections_{created,reused,expired}_total``,
  ``tulle_waypoint_upstream_pool_waits_total`` (counters)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from l7proxy.pool import PoolStats

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("route", "backend", "code")


class Series:
    __slots__ = ("count", "total", "buckets")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (len(BUCKETS) + 1)


class WaypointMetrics(Collector):
    def __init__(self, pool_stats: Callable[[], PoolStats] | None = None) -> None:
        self._series: dict[tuple[str, str, int], Series] = {}
        self._pool_stats = pool_stats
        self.in_flight = 0
        self.connections = 0
        self.rejected_connections = 0
        self.closes: dict[str, int] = {}
        """Client connections the waypoint ended for being slow, by reason."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, route: str, backend: str, code: int, seconds: float) -> None:
        key = (route, backend, code)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series()
        series.count += 1
        series.total += seconds
        series.buckets[bisect_left(BUCKETS, seconds)] += 1

    def count_close(self, reason: str) -> None:
        self.closes[reason] = self.closes.get(reason, 0) + 1

    def requests(self, route: str, backend: str, code: int) -> int:
        """Requests counted so far for one label set (for tests and the CLI)."""
        series = self._series.get((route, backend, code))
        return series.count if series is not None else 0

    # --- exposition ------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "tulle_waypoint_requests",
            "Requests answered, by route, backend and code",
            labels=LABELS,
        )
        duration = HistogramMetricFamily(
            "tulle_waypoint_request_duration_seconds",
            "Time from request head to response end",
            labels=LABELS,
        )
        for (route, backend, code), series in list(self._series.items()):
            labels = [route, backend, str(code)]
            total.add_metric(labels, series.count)
            running = 0
            buckets = []
            for bound, count in zip((*BUCKETS, float("inf")), series.buckets, strict=True):
                running += count
                buckets.append((_le(bound), float(running)))
            duration.add_metric(labels, buckets, series.total)
        yield total
        yield duration
        yield GaugeMetricFamily(
            "tulle_waypoint_requests_in_flight", "Requests being served", value=self.in_flight
        )
        yield GaugeMetricFamily(
            "tulle_waypoint_connections", "Open client connections", value=self.connections
        )
        yield CounterMetricFamily(
            "tulle_waypoint_rejected_connections",
            "Client connections refused with 503 over the connection limit",
            value=self.rejected_connections,
        )
        closes = CounterMetricFamily(
            "tulle_waypoint_slow_client_closes",
            "Client connections closed for a slow or stalled body, or for not reading",
            labels=["reason"],
        )
        for reason, count in sorted(self.closes.items()):
            closes.add_metric([reason], count)
        yield closes
        if self._pool_stats is not None:
            stats = self._pool_stats()
            pool = GaugeMetricFamily(
                "tulle_waypoint_upstream_connections", "Upstream connections", labels=["state"]
            )
            pool.add_metric(["open"], stats.open)
            pool.add_metric(["idle"], stats.idle)
            yield pool
            for name, value, text in (
                ("created", stats.created, "Upstream connections opened"),
                ("reused", stats.reused, "Requests sent on a pooled connection"),
                ("expired", stats.expired, "Idle upstream connections closed"),
            ):
                yield CounterMetricFamily(
                    f"tulle_waypoint_upstream_connections_{name}", text, value=value
                )
            yield CounterMetricFamily(
                "tulle_waypoint_upstream_pool_waits",
                "Requests that waited for a connection at the per-endpoint bound",
                value=stats.waits,
            )
            yield CounterMetricFamily(
                "tulle_waypoint_upstream_pool_wait_timeouts",
                "Requests answered 503 after waiting too long for an upstream connection",
                value=stats.wait_timeouts,
            )

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics on ``host:port`` (a daemon thread)."""
        start_http_server(port, addr=host, registry=self.registry)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
