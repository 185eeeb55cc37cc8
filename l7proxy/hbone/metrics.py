"""Prometheus metrics of the waypoint's HBONE ends, a collector registered with the
waypoint's registry (``l7proxy.node``):

- ``tulle_waypoint_hbone_handshakes_total{side,result}`` (counter): TLS handshakes by end
  (``client``: this waypoint dialled, ``server``: it accepted) and result (``ok`` or the
  drop reason that refused it);
- ``tulle_waypoint_hbone_connections{side}`` (gauge): open tunnel connections;
- ``tulle_waypoint_hbone_streams{side}`` (gauge): open CONNECT streams;
- ``tulle_waypoint_hbone_streams_total{side,verdict}`` (counter): streams decided;
- ``tulle_waypoint_ktls`` (gauge, 0/1): the kernel offers kTLS (``ktls.probe``);
- ``tulle_waypoint_svid_expiry_seconds{spiffe_id}`` (gauge): seconds until each held
  SVID expires (issue 11 item 6).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SIDES = ("client", "server")


class HboneMetrics(Collector):
    def __init__(
        self, ktls: bool = False, expiries: Callable[[], dict[str, datetime]] | None = None
    ) -> None:
        self.ktls = ktls
        self.expiries = expiries
        self.handshakes: dict[tuple[str, str], int] = {}
        self.connections = dict.fromkeys(SIDES, 0)
        self.streams = dict.fromkeys(SIDES, 0)
        self.decided: dict[tuple[str, str], int] = {}

    def handshake(self, side: str, result: str) -> None:
        key = (side, result)
        self.handshakes[key] = self.handshakes.get(key, 0) + 1

    def stream_decided(self, side: str, verdict: str) -> None:
        key = (side, verdict)
        self.decided[key] = self.decided.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        hs = CounterMetricFamily(
            "tulle_waypoint_hbone_handshakes",
            "HBONE TLS handshakes by side and result",
            labels=("side", "result"),
        )
        for (side, result), count in sorted(self.handshakes.items()):
            hs.add_metric([side, result], count)
        yield hs
        conns = GaugeMetricFamily(
            "tulle_waypoint_hbone_connections",
            "Open HBONE tunnel connections",
            labels=("side",),
        )
        streams = GaugeMetricFamily(
            "tulle_waypoint_hbone_streams", "Open HBONE CONNECT streams", labels=("side",)
        )
        for side in SIDES:
            conns.add_metric([side], self.connections[side])
            streams.add_metric([side], self.streams[side])
        yield conns
        yield streams
        decided = CounterMetricFamily(
            "tulle_waypoint_hbone_streams",
            "HBONE CONNECT streams decided, by verdict",
            labels=("side", "verdict"),
        )
        for (side, verdict), count in sorted(self.decided.items()):
            decided.add_metric([side, verdict], count)
        yield decided
        yield GaugeMetricFamily(
            "tulle_waypoint_ktls",
            "1 if the kernel offers kTLS (TCP_ULP tls)",
            value=1 if self.ktls else 0,
        )
        if self.expiries is not None:
            expiry = GaugeMetricFamily(
                "tulle_waypoint_svid_expiry_seconds",
                "Seconds until each SVID the waypoint holds expires",
                labels=("spiffe_id",),
            )
            now = time.time()
            for spiffe_id, at in sorted(self.expiries().items()):
                expiry.add_metric([spiffe_id], at.timestamp() - now)
            yield expiry
