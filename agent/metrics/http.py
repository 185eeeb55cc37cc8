"""HTTP metrics from the waypoint's L7 response flows (one per request), for `FlowMetrics`:

- ``tulle_http_requests_total{method,code,source_workload,destination_workload}`` (and
  Hubble's ``protocol`` and ``reporter`` labels when configured);
- ``tulle_http_request_duration_seconds{method,source_workload,destination_workload}``:
  from ``l7.latency_ns`` (responses without a latency are not observed);
- and each flow's request split goes to `agent.metrics.split` with the same workload pair.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from agent.flows.flow import HTTP, Endpoint, Flow, Layer7, TrafficDirection
from agent.metrics.series import Series
from agent.metrics.split import FOLD_AT, FOLD_LEN, SplitSeries

_INGRESS = TrafficDirection.INGRESS


class HttpSeries:
    """The two HTTP families and the split's hand-off; `observe` is called under
    `FlowMetrics`' lock. ``workload`` names an endpoint's workload (`FlowMetrics`' cached
    label)."""

    def __init__(self, series: Callable[..., Series | None], bounds_s: tuple[float, ...],
                 workload: Callable[[Endpoint | None], str], split: SplitSeries) -> None:
        self.requests = series("http_requests")
        self.durations = series("http_request_duration_seconds", "", histogram=len(bounds_s))
        self._bounds_ns = tuple(round(b * 1e9) for b in bounds_s)
        self._workload = workload
        self._split = split

    def observe(self, flow: Flow, l7: Layer7, http: HTTP, n: int) -> None:
        if flow.is_reply is False:  # a response flow recorded client -> server
            client, server = flow.source, flow.destination
        else:
            client, server = flow.destination, flow.source
        src, dst = self._workload(client), self._workload(server)
        method = http.method
        reporter = "server" if flow.traffic_direction == _INGRESS else "client"
        s = self.requests
        if s is not None:
            raw: tuple[Any, ...] = (method, http.protocol, http.code, reporter, src, dst)
            cell = s.cache.get(raw)
            if cell is None:
                cell = s.admit(raw, (method or "unknown", http.protocol or "unknown",
                                     str(http.code), reporter, src, dst))
            cell[0] += n
        s = self.durations
        latency = l7.latency_ns
        if s is not None and latency > 0:
            raw = (method, reporter, src, dst)
            cell = s.cache.get(raw)
            if cell is None:
                cell = s.admit(raw, (method or "unknown", reporter, src, dst))
            cell[bisect_left(self._bounds_ns, latency)] += n
            cell[-1] += latency * n
        tulle = flow.tulle
        if tulle is not None and (parts := tulle.request_parts) is not None:
            svc = flow.destination_service  # a waypoint flow's pair is known: no call
            split = self._split
            if (svc is split.last_service and src is split.last_src and dst is split.last_dst
                    and n == 1):  # the same objects as the last flow's: its entry
                known = split.last_known
            else:
                known = split.known.get((src, dst, id(svc))) if n == 1 else None
                if known is not None and known[0] is svc:
                    split.remember(src, dst, known)
            if known is None or known[0] is not svc:
                self._split.observe(parts, src, dst, svc, n, tulle.duration_ns)
            elif type(parts) is bytes:  # the common request: its row of readings waits
                pair = known[1]
                pair.lean += parts
                spans = pair.spans
                spans.append(tulle.duration_ns)
                if len(spans) >= FOLD_AT:
                    self._split.fold(pair)
            else:
                pending = known[1].pending
                pending += parts
                if len(pending) >= FOLD_LEN:
                    self._split.fold(known[1])
