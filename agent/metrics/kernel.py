"""Kernel connection-trace metrics: connect latency, RTT, retransmits and kernel drops.

Fed by the same flows as the rest of `FlowMetrics` (the tracer's records arrive through
the flow ingest), so they cost nothing extra on the datapath:

- ``tulle_tcp_connect_duration_seconds{source_workload,destination_workload}``: client
  close records that established (``tulle.tcp.connect_latency_ns``, SYN sent to
  ESTABLISHED);
- ``tulle_tcp_rtt_seconds{source_workload,destination_workload}``: one observation per
  closed connection, its mean smoothed RTT (``tulle.tcp.srtt_us.mean``); the per-segment
  samples were already aggregated in the kernel;
- ``tulle_tcp_retransmits_total{source_workload,destination_workload}``: retransmitted
  packets of closed connections (counted at close, so a connection contributes once);
- ``tulle_kernel_drops_total{reason,direction}``: DROPPED flows from ``skb:kfree_skb``, by
  the kernel's own drop reason name (read from the kernel at run time).

Close records name the client as source and the server as destination (both roles), so
the workload pair reads the same from either end.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from agent.flows.flow import Endpoint, Flow, TcpTrace, TulleInfo
from agent.flows.ingest import TcpCloses
from agent.metrics.series import Cell, Series

KERNEL_HELP = {
    "tcp_connect_duration_seconds": "TCP connect latency of local pods' client connections "
                                    "(SYN sent to established), in seconds.",
    "tcp_rtt_seconds": "Mean smoothed RTT of each closed TCP connection, in seconds.",
    "tcp_retransmits": "Retransmitted TCP packets of closed connections, by workload pair.",
    "kernel_drops": "Packets the kernel dropped (skb:kfree_skb), by the kernel's reason.",
}


class KernelSeries:
    """The four kernel families; `observe` is called under `FlowMetrics`' lock."""

    def __init__(self, series: Callable[..., Series | None], connect_bounds_s: tuple[float, ...],
                 rtt_bounds_s: tuple[float, ...], workload: Callable[[Endpoint | None], str]):
        self.connect = series("tcp_connect_duration_seconds", "", histogram=len(connect_bounds_s))
        self.rtt = series("tcp_rtt_seconds", "", histogram=len(rtt_bounds_s))
        self.retransmits = series("tcp_retransmits")
        self.drops = series("kernel_drops")
        self._connect_ns = tuple(round(b * 1e9) for b in connect_bounds_s)
        self._rtt_ns = tuple(round(b * 1e9) for b in rtt_bounds_s)
        self._workload = workload

    def observe(self, flow: Flow, tulle: TulleInfo, n: int) -> None:
        tcp = tulle.tcp
        if tcp is not None:
            self._observe_close(flow, tcp, n)
        elif tulle.kernel_drop_reason and self.drops is not None:
            raw = (flow.drop_reason_desc, tulle.kernel_drop_reason, flow.traffic_direction)
            cell = self.drops.cache.get(raw)
            if cell is None:
                reason = flow.drop_reason_desc or f"REASON_{tulle.kernel_drop_reason}"
                word = str(flow.traffic_direction).lower()
                cell = self.drops.admit(raw, (reason, word if word in ("ingress", "egress")
                                              else "unknown"))
            cell[0] += n

    def _cells(self, raw: tuple[Endpoint | None, Endpoint | None]) -> Callable[[Series], Cell]:
        """The (source, destination) pair's cell in any family, its workload labels resolved
        only when a family meets the pair for the first time."""
        pair: tuple[str, str] | None = None

        def cell_of(s: Series) -> Cell:
            nonlocal pair
            cell = s.cache.get(raw)
            if cell is None:
                if pair is None:
                    pair = (self._workload(raw[0]), self._workload(raw[1]))
                cell = s.admit(raw, pair)
            return cell

        return cell_of

    def _observe_close(self, flow: Flow, tcp: TcpTrace, n: int) -> None:
        cell_of = self._cells((flow.source, flow.destination))
        if tcp.connect_latency_ns > 0 and self.connect is not None:
            _bucket(cell_of(self.connect), self._connect_ns, tcp.connect_latency_ns, n)
        if tcp.srtt_us is not None and tcp.srtt_us.samples and self.rtt is not None:
            _bucket(cell_of(self.rtt), self._rtt_ns, tcp.srtt_us.mean * 1000, n)
        if tcp.retransmits and self.retransmits is not None:
            cell_of(self.retransmits)[0] += tcp.retransmits * n

    def observe_closes(self, closes: TcpCloses) -> None:
        """`_observe_close` for a column of closes between one pair: the same cells, the
        same counts, one lookup per family."""
        cell_of = self._cells((closes.source, closes.destination))
        if closes.connect_ns and self.connect is not None:
            _buckets(cell_of(self.connect), self._connect_ns, closes.connect_ns)
        if closes.rtt_ns and self.rtt is not None:
            _buckets(cell_of(self.rtt), self._rtt_ns, closes.rtt_ns)
        if closes.retransmits and self.retransmits is not None:
            cell_of(self.retransmits)[0] += closes.retransmits

    def families(self) -> list[tuple[str, Series | None]]:
        return [("tcp_retransmits", self.retransmits), ("kernel_drops", self.drops)]

    def histograms(self) -> list[tuple[str, Series | None, tuple[int, ...]]]:
        return [("tcp_connect_duration_seconds", self.connect, self._connect_ns),
                ("tcp_rtt_seconds", self.rtt, self._rtt_ns)]


def _bucket(cell: Cell, bounds_ns: tuple[int, ...], value_ns: int, n: int) -> None:
    cell[bisect_left(bounds_ns, value_ns)] += n
    cell[-1] += value_ns * n


def _buckets(cell: Cell, bounds_ns: tuple[int, ...], values_ns: list[int]) -> None:
    """`_bucket` for many values. Fewer values than bounds: one bisection each. Otherwise
    sorted once (in C), each bucket's count the difference of two bisections of the sorted
    values, so the Python steps go by bucket, not by value, and stop at the bucket that
    holds the largest. A value lands where `_bucket` puts it, in the first bucket whose
    bound is >= it (``bisect_left``): bucket i holds bounds[i-1] < v <= bounds[i]."""
    if len(values_ns) < len(bounds_ns):
        for value in values_ns:
            cell[bisect_left(bounds_ns, value)] += 1
        cell[-1] += sum(values_ns)
        return
    ordered = sorted(values_ns)
    below, total = 0, len(ordered)  # below: values <= the previous bound
    for i, bound in enumerate(bounds_ns):
        upto = bisect_right(ordered, bound)
        if upto != below:
            cell[i] += upto - below
            below = upto
            if below == total:
                break
    if below != total:
        cell[len(bounds_ns)] += total - below
    cell[-1] += sum(values_ns)


def histogram_buckets(bounds_s: tuple[float, ...], cell: Cell) -> tuple[list[Any], float]:
    """Cumulative (le, count) pairs and the sum in seconds, from a histogram cell."""
    les = [repr(float(b)) for b in bounds_s] + ["+Inf"]
    total, buckets = 0, []
    for le, count in zip(les, cell[:-1], strict=True):
        total += count
        buckets.append((le, total))
    return buckets, cell[-1] / 1e9
