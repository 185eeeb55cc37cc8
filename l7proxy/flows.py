"""L7 flows: one per request, in the same ``Flow`` shape as the datapath's L4 flows.

The hot path appends one tuple (an `L7Record`) to a list, and a timed request's marks to
another (``agent.flows.l7record``: they never become JSON numbers). When a batch fills or a
short timer fires the batch goes to the sink: a *record sink* (``raw_records = True``, such
as the agent forwarder) takes the tuples and the marks packed in one binary column, and
the agent builds the flows; any other
sink (``FlowRing.put_many``, the stdout JSON sink) gets ``Flow`` objects built here. With no
sink nothing is recorded. A sink that cannot keep up loses the oldest pending records, never
memory: at most ``max_pending`` are held.

The HBONE code reports each tunnelled connection it accepts or refuses with
`FlowRecorder.record_tunnel` (a `TunnelEvent`). Those are batched beside the L7 records, on
the same timer, at most ``max_tunnel_pending`` held (the oldest dropped and counted,
``tunnel_overflow``): a sink with a ``send_tunnel`` method (the agent forwarder) takes the
events, a flow sink takes their flows (``agent.flows.tunnelflow``, not enriched).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.flows.flow import Flow
from agent.flows.l7flow import L7FlowBuilder
from agent.flows.l7record import (
    L7Record,
    decode_column,
    join_column,
    with_marks,
)
from agent.flows.tunnelrecord import TunnelEvent

FlowSink = Callable[[Sequence[Flow]], None]
RecordSink = Callable[[Sequence[L7Record], bytes], None]  # records, `join_column` column
Sink = FlowSink | RecordSink  # a RecordSink says so with a true `raw_records` attribute


class FlowRecorder:
    def __init__(
        self,
        sink: Sink | None,
        *,
        node_name: str = "",
        batch: int = 256,
        interval: float = 0.2,
        max_pending: int = 65_536,
        max_tunnel_pending: int = 4096,
    ) -> None:
        self.sink = sink
        self.node_name = node_name
        self.batch = batch
        self.interval = interval
        self.max_pending = max_pending
        self.lost = 0
        self._pending: list[L7Record] = []
        self._marks: list[bytes] = []  # `pack_lean` parts of the pending timed records
        self._timer: asyncio.TimerHandle | None = None
        self._raw = bool(getattr(sink, "raw_records", False))
        self._builder = L7FlowBuilder(node_name)
        self.lost_tunnel = 0  # tunnel events dropped: more than max_tunnel_pending waited
        self._tunnels: deque[TunnelEvent] = deque(maxlen=max(1, max_tunnel_pending))

    @property
    def enabled(self) -> bool:
        return self.sink is not None

    def record(self, entry: L7Record, marks: bytes | None = None) -> None:
        """``entry``'s field 13 is set (True, or its ``reqsplit.EXTRA`` marks) when
        ``marks`` (``l7proxy.timing.Marks``) come with it, else None."""
        if marks is not None:
            self._marks.append(marks)
        pending = self._pending
        pending.append(entry)
        if len(pending) >= self.batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def record_tunnel(self, event: TunnelEvent) -> None:
        """Report one tunnelled connection, accepted or refused, on the side that decided.
        Never blocks: the event waits for the next batch (or goes now, without a loop)."""
        if self.sink is None:
            return
        tunnels = self._tunnels
        if len(tunnels) == tunnels.maxlen:
            self.lost_tunnel += 1  # append drops the oldest
        tunnels.append(event)
        if len(tunnels) >= self.batch:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        marks, self._marks = self._marks, []
        if self._tunnels:
            tunnels = list(self._tunnels)
            self._tunnels.clear()
            self.send_tunnels(tunnels)
        if not pending or self.sink is None:
            return
        if len(pending) > self.max_pending:
            cut = len(pending) - self.max_pending
            self.lost += cut
            marks = marks[sum(1 for r in pending[:cut] if r[13] is not None) :]
            pending = pending[cut:]
        self.send(pending, marks)

    def losses(self) -> dict[str, int]:
        """Records dropped so far by reason: here (``pending_overflow``) and in the sink, if
        it counts its own (the agent forwarder does: ``agent_backlog``, ``agent_unavailable``)."""
        counts = getattr(self.sink, "losses", None)
        return {"pending_overflow": self.lost, "tunnel_overflow": self.lost_tunnel,
                **(counts() if callable(counts) else {})}

    def send_tunnels(self, events: Sequence[TunnelEvent]) -> None:
        """Hand tunnel events to the sink now: as they are (``send_tunnel``), or as flows."""
        sink = self.sink
        if sink is None or not events:
            return
        send = getattr(sink, "send_tunnel", None)
        if callable(send):
            send(events)
        elif self._raw:  # a record sink that knows no tunnel events: lost, and counted
            self.lost_tunnel += len(events)
        else:
            from agent.flows.tunnelflow import tunnel_flow, with_identities

            flows = []
            for e in events:
                try:
                    flows.append(with_identities(tunnel_flow(e, self.node_name), e))
                except ValueError:  # a drop reason drop.h does not name: not a flow
                    self.lost_tunnel += 1
            cast(FlowSink, sink)(flows)

    def send(self, records: Sequence[L7Record], marks: Sequence[bytes] = ()) -> None:
        """Hand `records` (and the marks of those whose field 13 is set, in order) to
        the sink now: as they are, or as flows for a flow sink."""
        if self.sink is None:
            return
        column = join_column(marks)
        if self._raw:
            cast(RecordSink, self.sink)(records, column)
        else:
            build = self._builder.flow
            ints = decode_column(column, len(column))
            cast(FlowSink, self.sink)([build(r) for r in with_marks(records, ints)])


class FlowLossCollector(Collector):
    """``tulle_waypoint_flows_dropped_total{reason}``: L7 flow records (and tunnel events,
    ``tunnel_overflow`` and in the forwarder's counts) the waypoint dropped
    rather than wait for the agent (read at scrape time, nothing on the hot path)."""

    def __init__(self, recorder: FlowRecorder) -> None:
        self.recorder = recorder

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "tulle_waypoint_flows_dropped",
            "L7 flow records and tunnel events dropped before reaching the node agent, "
            "by reason",
            labels=["reason"],
        )
        for reason, count in self.recorder.losses().items():
            family.add_metric([reason], count)
        yield family


def now_ns() -> int:
    return time.time_ns()


class CountingSink:
    """Builds and drops flows, counting them: for benchmarks with flows on."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, flows: Sequence[Flow]) -> None:
        self.count += len(flows)


def json_lines_sink(write: Callable[[str], object]) -> FlowSink:
    """One Hubble-shaped JSON object per flow and line (``tulle observe -o json``)."""
    import json

    from agent.flows.codec import envelope

    def sink(flows: Sequence[Flow]) -> None:
        write("".join(json.dumps(envelope(f)) + "\n" for f in flows))

    return sink
