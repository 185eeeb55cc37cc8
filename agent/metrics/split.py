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

from agent.flows.flow import Endpoint, RequestSplit, Service
from agent.metrics.series import Series

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

    def __init__(self, series: Callable[..., Series | None], bounds_s: tuple[float, ...],
                 workload: Callable[[Endpoint | None], str]) -> None:
        self.hist = series("request_split_seconds", "", histogram=len(bounds_s))
        self._bounds_ns = tuple(round(b * 1e9) for b in bounds_s)
        self._workload = workload

    def observe(self, split: RequestSplit, client: Endpoint | None, server: Endpoint | None,
                service: Service | None, n: int) -> None:
        s = self.hist
        if s is None:
            return
        src, dst = self._workload(client), self._workload(server)
        if dst in _COLLAPSED and service is not None and service.name:
            dst = f"{service.namespace}/{service.name}"
        bounds = self._bounds_ns
        for field, part in PART_LABELS:
            raw = (part, src, dst)
            cell = s.cache.get(raw)
            if cell is None:
                cell = s.admit(raw, raw)
            value = getattr(split, field)
            cell[bisect_left(bounds, value)] += n
            cell[-1] += value * n
