"""The tracer's records into the agent's flow store: translate, name the pods, ingest.

A record names the local pod it is about (``pod_ip``): the socket's own address, or for a
socket inside the pod that does not carry it (loopback), the pod whose network namespace the
socket lives in. `attribute` puts that pod on the flow's local side.

`TraceFeed.step` drains the ring's raw records into `agent.tracing.intake`, which stores
close records unbuilt and counts them by column. `record_flow` (`intake.record_flow_of`:
decode, `to_flow`, `attribute`) stays the one translation of a record, run for drops, for
one record of each group, and when a reader reads a close.

A batch that fails does not end tracing: `run` goes on with the next. The failure is not
hidden either. Its records are counted lost in the flow store (readers see a LostEvent,
``OBSERVER_EVENTS_QUEUE``), `FeedHealth` keeps the count and the last error for the agent's
health report (``tulle lab status`` prints them), and the log gets the first failure's
traceback, then one a minute at most, each with the count since (a failure that repeats every
drain would otherwise write five tracebacks a second, for good).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable

from agent.flows.enrich import EndpointIndex, enrich
from agent.flows.flow import Flow, LostEventSource, TrafficDirection
from agent.flows.ingest import FlowIngest
from agent.tracing.health import FeedHealth
from agent.tracing.intake import TraceIntake, record_flow_of
from agent.tracing.kallsyms import Symbols
from agent.tracing.reasons import kernel_drop_reasons
from agent.tracing.records import Clock, KernelRecord, Symbolizer
from agent.tracing.tracer import Tracer

log = logging.getLogger("tulle.tracing")
DRAIN_INTERVAL_S = 0.2  # records wake nobody (conn_trace.h): this bounds how late they are


def attribute(flow: Flow, rec: KernelRecord, index: EndpointIndex, node: str) -> Flow:
    """`flow` enriched from `index`, with the record's pod on the local side. Pure."""
    flow = enrich(flow, index, node)
    if flow.ip is None:
        return flow
    local_is_source = flow.traffic_direction == TrafficDirection.EGRESS
    address = flow.ip.source if local_is_source else flow.ip.destination
    if address == rec.pod_ip or rec.pod_ip not in index.pods:
        return flow
    if local_is_source:
        return dataclasses.replace(flow, source=index.endpoint(rec.pod_ip))
    return dataclasses.replace(flow, destination=index.endpoint(rec.pod_ip))


def monotonic_clock() -> Clock:
    return Clock(time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC))


class TraceFeed:
    def __init__(
        self,
        tracer: Tracer,
        ingest: FlowIngest,
        index: Callable[[], EndpointIndex],
        local_ips: Callable[[], Iterable[str]],
        node: str,
        *,
        reasons: dict[int, str] | None = None,
        symbols: Symbolizer | None = None,
    ) -> None:
        self.tracer = tracer
        self.ingest = ingest
        self.index = index
        self.local_ips = local_ips
        self.node = node
        self.reasons = kernel_drop_reasons() if reasons is None else reasons
        self.symbols = symbols or Symbols()
        self.clock = monotonic_clock()
        self._lost_seen = tracer.lost()  # an adopted tracer's count: the last start's losses
        self.health = FeedHealth()
        self.want_attached = True  # set from a signal handler; applied by the feed thread
        self.attached = True
        self.record_flow = record_flow_of(tracer.layout, self.clock, self.reasons,
                                          self.symbols, node, attribute)
        self.intake = TraceIntake(tracer.layout, ingest, self.record_flow, self.clock)

    def step(self) -> int:
        """Update the local pods, drain the ring once; the number of flows stored."""
        if self.want_attached != self.attached:
            self.tracer.set_attached(self.want_attached)
            self.attached = self.want_attached
            log.info("kernel tracing %s", "resumed (tracepoints attached)" if self.attached
                     else "paused (tracepoints detached)")
        self.tracer.set_local(self.local_ips())
        batch = self.tracer.read_raw()
        self.health.records += len(batch)
        try:
            stored = self.intake.drain(batch, self.index()) if batch else 0
        except Exception:
            # Read from the ring, so gone from the kernel: readers learn they missed them.
            self.ingest.record_lost(LostEventSource.OBSERVER_EVENTS_QUEUE, len(batch),
                                    node_name=self.node)
            raise
        lost = self.tracer.lost()
        if lost > self._lost_seen:
            self.ingest.record_lost(LostEventSource.PERF_EVENT_RING_BUFFER,
                                    lost - self._lost_seen, node_name=self.node)
            log.warning("tracer lost %d records (ring buffer full)", lost - self._lost_seen)
            self._lost_seen = lost
        return stored

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception as err:  # one bad batch must not end tracing for good
                    self._failed(err)
                stop.wait(DRAIN_INTERVAL_S)
            try:
                self.step()  # what came in since the last drain
            except Exception as err:
                self._failed(err)
        finally:
            self.tracer.close()

    def _failed(self, err: Exception) -> None:
        unlogged = self.health.failed(err, time.monotonic(), time.time())
        if unlogged is None:
            return
        since = (f" ({unlogged} more failed since the last report; "
                 f"{self.health.failed_batches} in all)" if unlogged else "")
        log.error("tracer: a batch failed%s; going on with the next", since, exc_info=err)
