"""The one door flows enter an agent by: every flow goes to the ring (for readers) and to
the metrics, and every loss is recorded in both. The datapath's reader enters raw records
(`put_deferred`) with their metrics already counted per kind of flow."""

from __future__ import annotations

from typing import Protocol

from agent.flows.flow import Flow, LostEventSource
from agent.flows.store import FlowRing, Materializer


class FlowObserver(Protocol):
    def observe(self, flow: Flow) -> None: ...

    def observe_counts(self, counts: list[tuple[Flow, int]]) -> None: ...

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
                     counts: list[tuple[Flow, int]]) -> None:
        """Raw records (flows built when read, `hows[i]` building `raws[i]`) and, for the
        metrics, one sample flow per kind of record with how many records of that kind."""
        self.ring.put_deferred(raws, hows)
        for observer in self.observers:
            observer.observe_counts(counts)

    def record_lost(self, source: LostEventSource | str, n: int, node_name: str = "") -> None:
        self.ring.record_lost(source, n, node_name=node_name)
        for observer in self.observers:
            observer.observe_lost(source, n)
