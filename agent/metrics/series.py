"""The series of one metric family, with its cardinality caps and a hot-path cache.

A family maps a *raw key* (whatever cheap tuple the caller derives from a flow) to a
*cell*, a small list the caller increments in place: ``[count]`` for a counter, or
``[bucket_0, …, bucket_inf, sum]`` for a histogram. The first time a raw key is seen, the
caller supplies its full label values; `Series.admit` projects them onto the configured
labels, applies the caps, and returns the cell. Admitted raw keys are cached, so the steady
state is one dict lookup per family per flow.

Raw keys whose labels overflowed are not cached (each such observation takes the slow path
and is counted as an overflow), and the cache itself is bounded, so hostile label values
(an HTTP method per request, say) cannot grow memory without bound.

Not thread-safe: `FlowMetrics` serialises writers and scrapes with one lock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

Cell = list[int]

SERIES_WILDCARD = "*"  # overflow counter's label value for the series cap


class Series:
    __slots__ = (
        "name", "labels", "cache", "series", "_keep", "_seen", "_max_values", "_max_series",
        "_other", "_overflow", "_new_cell", "_cache_limit",
    )

    def __init__(
        self,
        name: str,
        full_labels: tuple[str, ...],
        labels: tuple[str, ...],
        *,
        max_values: int,
        max_series: int,
        overflow_value: str,
        overflow: dict[tuple[str, str], int],
        new_cell: Callable[[], Cell],
    ) -> None:
        self.name = name  # exposed metric name, e.g. "tulle_drop_total"
        self.labels = labels  # exposed labels, in order
        self.cache: dict[Hashable, Cell] = {}  # raw key -> cell (the hot path)
        self.series: dict[tuple[str, ...], Cell] = {}  # label values -> cell
        self._keep = tuple(full_labels.index(lb) for lb in labels)
        self._seen: tuple[set[str], ...] = tuple(set() for _ in labels)
        self._max_values = max_values
        self._max_series = max_series
        self._other = overflow_value
        self._overflow = overflow  # shared: (metric, label) -> collapsed observations
        self._new_cell = new_cell
        self._cache_limit = max(1024, 4 * max_series)

    def admit(self, raw: Hashable, values: tuple[str, ...]) -> Cell:
        """The cell for a raw key seen for the first time (or not cacheable); `values` are
        the family's full label values."""
        key = tuple(values[i] for i in self._keep)
        collapsed = False
        out = list(key)
        for pos, value in enumerate(key):
            seen = self._seen[pos]
            if value in seen:
                continue
            if len(seen) < self._max_values:
                seen.add(value)
            else:
                out[pos] = self._other
                self._count_overflow(self.labels[pos])
                collapsed = True
        key = tuple(out)
        cell = self.series.get(key)
        if cell is None:
            if len(self.series) >= self._max_series:
                key = (self._other,) * len(key)
                self._count_overflow(SERIES_WILDCARD)
                collapsed = True
                cell = self.series.get(key)
            if cell is None:
                cell = self.series[key] = self._new_cell()
        if not collapsed and len(self.cache) < self._cache_limit:
            self.cache[raw] = cell
        return cell

    def _count_overflow(self, label: str) -> None:
        k = (self.name, label)
        self._overflow[k] = self._overflow.get(k, 0) + 1

    def snapshot(self) -> list[tuple[tuple[str, ...], Cell]]:
        """Label values and a copy of each cell, for a scrape."""
        return [(k, list(c)) for k, c in self.series.items()]
