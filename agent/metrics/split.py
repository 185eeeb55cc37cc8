"""Request-split metrics: where the waypoint's requests spent their time, by part.

- ``tulle_request_split_seconds{part,source_workload,destination_workload}``: one
  observation per part of every L7 flow that carries a split (``tulle.request``); ``part``
  is ``client_network``, ``proxy``, ``upstream_connect``, ``upstream_network`` or
  ``backend`` (five values: bounded). A request that opened no upstream connection
  observes 0 for ``upstream_connect``, so every part has the same count and the parts'
  sums add up to the requests' total time.

The destination is the serving workload when the flow names one, else the Service the
client dialled (a waypoint flow's destination is the ClusterIP), never an address.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable

from agent.flows.flow import RequestSplit, Service
from agent.metrics.series import Cell, Series

SPLIT_HELP = {
    "request_split_seconds": "Where L7 requests through the waypoint spent their time, by "
                             "part (client_network, proxy, upstream_connect, "
                             "upstream_network, backend), in seconds.",
}
PART_LABELS = (("client_network_ns", "client_network"), ("proxy_ns", "proxy"),
               ("upstream_connect_ns", "upstream_connect"),
               ("upstream_network_ns", "upstream_network"), ("backend_ns", "backend"))
_COLLAPSED = frozenset({"world", "unknown"})


class SplitSeries:
    """The split family; `observe` is called under `FlowMetrics`' lock."""

    def __init__(self, series: Callable[..., Series | None], bounds_s: tuple[float, ...]) -> None:
        self.hist = series("request_split_seconds", "", histogram=len(bounds_s))
        self._bounds_ns = tuple(round(b * 1e9) for b in bounds_s)
        self._zero = bisect_left(self._bounds_ns, 0)  # the bucket of a 0 ns part
        # (src, dst) -> the five parts' cells, once the series caches all five (one lookup
        # per flow instead of five: the agent observes every waypoint request). Bounded
        # as the series' own cache is: a pair only lands here when all its keys did.
        self._pairs: dict[tuple[str, str], tuple[Cell, ...]] = {}

    def _cells(self, s: Series, src: str, dst: str) -> tuple[Cell, ...]:
        cache = s.cache
        cells = []
        for _field, part in PART_LABELS:
            raw = (part, src, dst)
            cell = cache.get(raw)
            if cell is None:
                cell = s.admit(raw, raw)
            cells.append(cell)
        if all((part, src, dst) in cache for _field, part in PART_LABELS):
            self._pairs[(src, dst)] = tuple(cells)
        return tuple(cells)

    def observe(self, split: RequestSplit, src: str, dst: str, service: Service | None,
                n: int) -> None:
        """``src``/``dst``: the client's and the server's workload labels (the HTTP
        families' own, computed once per flow by `FlowMetrics`)."""
        s = self.hist
        if s is None:
            return
        if dst in _COLLAPSED and service is not None and service.name:
            dst = f"{service.namespace}/{service.name}"
        c0, c1, c2, c3, c4 = self._pairs.get((src, dst)) or self._cells(s, src, dst)
        bounds = self._bounds_ns
        # unrolled, in PART_LABELS order; upstream_connect is 0 on a pooled connection
        # (nearly every request): its bucket is known without a search
        v = split.client_network_ns
        c0[bisect_left(bounds, v)] += n
        v1 = split.proxy_ns
        c1[bisect_left(bounds, v1)] += n
        v2 = split.upstream_connect_ns
        c2[bisect_left(bounds, v2) if v2 else self._zero] += n
        v3 = split.upstream_network_ns
        c3[bisect_left(bounds, v3)] += n
        v4 = split.backend_ns
        c4[bisect_left(bounds, v4)] += n
        if n == 1:  # every waypoint flow
            c0[-1] += v
            c1[-1] += v1
            if v2:
                c2[-1] += v2
            c3[-1] += v3
            c4[-1] += v4
        else:
            c0[-1] += v * n
            c1[-1] += v1 * n
            c2[-1] += v2 * n
            c3[-1] += v3 * n
            c4[-1] += v4 * n
