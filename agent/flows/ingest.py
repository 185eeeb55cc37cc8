"""The one door flows enter an agent by: every flow goes to the ring (for readers) and to
the metrics, and every loss is recorded in both. The datapath's reader enters raw records
(`put_deferred`) with their metrics already counted per kind of flow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.flows.flow import Endpoint, Flow, LostEventSource
from agent.flows.store import FlowRing, Materializer


@dataclass(frozen=True, slots=True)
class TcpCloses:
    """The kernel tracer's closed connections between one pair of endpoints in one batch,
    by column (`agent.tracing.intake`): what the connection metrics count of them."""

    source: Endpoint | None
    destination: Endpoint | None
    connect_ns: list[int]  # connect latencies of client records that established
    rtt_ns: list[int]  # mean smoothed RTT of each connection with samples
    retransmits: int  # retransmitted packets, all of them


class FlowObserver(Protocol):
    def observe(self, flow: Flow) -> None: ...

    def observe_counts(self, counts: list[tuple[Flow, int]]) -> None: ...

    def observe_closes(self, closes: Sequence[TcpCloses]) -> None: ...

    def observe_lost(self, source: LostEventSource | str, count: int) -> None: ...


class FlowIngest:
    def __init__(self, ring: FlowRing, observers: tuple[FlowObserver, ...] = ()) -> None:
        self.ring = ring
        self.observers = observers

    def put(self, flow: Flow) -> None:
        self.ring.put(flow)
        for observer in self.observers:
            observer.observe(flow)

    def put_deferred(self, raws: list[bytes], hows: list[Materializer],
                     counts: list[tuple[Flow, int]], closes: Sequence[TcpCloses] = ()) -> None:
        """Raw records (flows built when read, `hows[i]` building `raws[i]`) and, for the
        metrics, one sample flow per kind of record with how many records of that kind, and
        the tracer's connection measurements by column."""
        self.ring.put_deferred(raws, hows)
        for observer in self.observers:
            observer.observe_counts(counts)
            if closes:
                observer.observe_closes(closes)

    def record_lost(self, source: LostEventSource | str, n: int, node_name: str = "") -> None:
        self.ring.record_lost(source, n, node_name=node_name)
        for observer in self.observers:
            observer.observe_lost(source, n)
