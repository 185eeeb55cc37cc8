"""The one door flows enter an agent by: every flow goes to the ring (for readers) and to
the metrics, and every loss is recorded in both."""

from __future__ import annotations

from typing import Protocol

from agent.flows.flow import Flow, LostEventSource
from agent.flows.store import FlowRing


class FlowObserver(Protocol):
    def observe(self, flow: Flow) -> None: ...

    def observe_lost(self, source: LostEventSource | str, count: int) -> None: ...


class FlowIngest:
    def __init__(self, ring: FlowRing, observers: tuple[FlowObserver, ...] = ()) -> None:
        self.ring = ring
        self.observers = observers

    def put(self, flow: Flow) -> None:
        self.ring.put(flow)
        for observer in self.observers:
            observer.observe(flow)

    def record_lost(self, source: LostEventSource | str, n: int, node_name: str = "") -> None:
        self.ring.record_lost(source, n, node_name=node_name)
        for observer in self.observers:
            observer.observe_lost(source, n)
