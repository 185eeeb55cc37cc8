"""`MapFillCollector`: how full each BPF map is, read when Prometheus scrapes.

The datapath supplies a callable returning ``{map_name: (entries, max_entries)}``; counting
entries walks the maps, so it runs once per scrape rather than on a timer. A failing
callable does not fail the scrape: the map gauges are left out, the error is logged and
counted in ``tulle_bpf_map_read_errors_total``.

Exposed: ``tulle_bpf_map_entries{map}``, ``tulle_bpf_map_max_entries{map}`` and
``tulle_bpf_map_fill_ratio{map}`` (entries / max_entries, 0 for a zero-sized map).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)

MapFill = Mapping[str, tuple[int, int]]


class MapFillCollector:
    def __init__(self, read: Callable[[], MapFill],
                 registry: CollectorRegistry | None = None) -> None:
        self._read = read
        self._errors = 0
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        entries = GaugeMetricFamily("tulle_bpf_map_entries",
                                    "Entries in each BPF map.", labels=["map"])
        capacity = GaugeMetricFamily("tulle_bpf_map_max_entries",
                                     "Capacity (max_entries) of each BPF map.", labels=["map"])
        ratio = GaugeMetricFamily("tulle_bpf_map_fill_ratio",
                                  "Entries over max_entries of each BPF map (0..1).",
                                  labels=["map"])
        try:
            fill = dict(self._read())
        except Exception as e:  # noqa: BLE001 - a scrape must survive a datapath hiccup
            log.warning("reading BPF map fill levels failed: %s", e)
            with self._lock:
                self._errors += 1
            fill = {}
        for name, (n, cap) in sorted(fill.items()):
            entries.add_metric([name], n)
            capacity.add_metric([name], cap)
            ratio.add_metric([name], n / cap if cap > 0 else 0.0)
        yield entries
        yield capacity
        yield ratio
        errors = CounterMetricFamily("tulle_bpf_map_read_errors",
                                     "Scrapes whose BPF map fill levels could not be read.")
        with self._lock:
            errors.add_metric([], self._errors)
        yield errors

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("tulle_bpf_map_entries", "", labels=["map"])
        yield GaugeMetricFamily("tulle_bpf_map_max_entries", "", labels=["map"])
        yield GaugeMetricFamily("tulle_bpf_map_fill_ratio", "", labels=["map"])
        yield CounterMetricFamily("tulle_bpf_map_read_errors", "")
