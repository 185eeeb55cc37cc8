"""The datapath's flow events into the agent's flow store, at ring-buffer speed.

A record costs the agent a copy and a few dict lookups; nothing is decoded on the way in:

- `run` reads the ring through its memory map, a batch at a time (`MappedRingBuffer`), with
  no Python call per record.
- `drain` resolves each record's endpoints and services through a cache
  keyed by the record's "who" bytes (`RecordKeys`), rebuilt when the `EndpointIndex` changes,
  so enrichment is still done at ingestion, with the index of that moment, once per address
  pair rather than once per event. The store keeps each raw record with what was resolved
  for it and builds a flow only when a reader reads it (`FlowRing.put_deferred`).
- Metrics are counted per "what" key (everything the flow metrics look at) and handed over
  once per batch with a count, decoded from one sample record per key.

The kernel wakes the agent once per `EVENTS_PER_WAKEUP` records per CPU (bpf/lib/events.h);
otherwise `run` drains every `DRAIN_INTERVAL_S`, which bounds how late a quiet node's flows
are.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING

from agent.datapath.flowevents import RECORD_SIZE, EventDecoder, RecordKeys
from agent.datapath.ringbuf import MappedRingBuffer
from agent.flows.enrich import EndpointIndex, Peers, apply_peers, peers
from agent.flows.flow import Flow, LostEventSource
from agent.flows.ingest import FlowIngest

if TYPE_CHECKING:  # programs imports BCC: loaded on the agent's BCC thread only
    from agent.datapath.programs import Datapath

log = logging.getLogger("tulle.datapath")
DRAIN_INTERVAL_S = 0.1
MAX_BATCH_BYTES = 1 << 20  # read at most this much of the ring per batch (~10,000 records)
_SAMPLE_LIMIT = 4096  # distinct metric keys kept decoded; the key space is small in practice
# Address pairs kept resolved. Pod-to-pod pairs are few, but world traffic (a scan, many
# clients from outside) is not: past this the cache starts over rather than grow.
PEER_CACHE_LIMIT = 65_536


class Resolved:
    """What ingestion resolved for one address pair: builds that pair's flows on demand
    (the `Materializer` of the store's deferred slots)."""

    __slots__ = ("decoder", "peers")

    def __init__(self, decoder: EventDecoder, found: Peers) -> None:
        self.decoder = decoder
        self.peers = found

    def flow(self, raw: bytes) -> Flow:
        flow = self.decoder.decode(raw)
        if flow.is_reply:  # a reply flow (EVENT_REPLY): the pair, resolved as opened, flips
            return apply_peers(flow, self.peers.flipped())
        return apply_peers(flow, self.peers)

    def time(self, raw: bytes) -> int:
        return self.decoder.time(raw)


class EventReader:
    def __init__(
        self,
        decoder: EventDecoder,
        ingest: FlowIngest,
        index: Callable[[], EndpointIndex],
        keys: RecordKeys | None = None,
    ) -> None:
        self.decoder = decoder
        self.ingest = ingest
        self.index = index
        self.keys = keys or RecordKeys.of()
        self._who = itemgetter(slice(*self.keys.who))
        self._what = itemgetter(slice(*self.keys.what))
        self._resolved: dict[bytes, Resolved] = {}
        self._resolved_for: EndpointIndex | None = None
        self._samples: dict[bytes, Flow] = {}
        self._lost_seen = 0

    def drain(self, batch: list[bytes]) -> int:
        """Resolve, count and store a batch of raw records; the number stored. The per-record
        steps are C-level loops (map, Counter, zip); Python runs once per new key."""
        if not batch:
            return 0
        if set(map(len, batch)) != {RECORD_SIZE}:
            batch = self._well_formed(batch)
        index = self.index()
        if index is not self._resolved_for or len(self._resolved) > PEER_CACHE_LIMIT:
            # New endpoints (or too many pairs): resolve pairs afresh.
            self._resolved = {}
            self._resolved_for = index
        resolved = self._resolved
        whos = list(map(self._who, batch))
        hows = list(map(resolved.get, whos))
        if None in hows:
            for i, how in enumerate(hows):
                if how is None:
                    who = whos[i]
                    how = resolved.get(who)
                    if how is None:
                        how = resolved[who] = self._resolve(index, who)
                    hows[i] = how
        counts = Counter(map(self._what, batch))
        self.ingest.put_deferred(batch, hows,  # type: ignore[arg-type]  # no None left
                                 [(self._sample(k, batch), n) for k, n in counts.items()])
        return len(batch)

    @staticmethod
    def _well_formed(batch: list[bytes]) -> list[bytes]:
        for raw in batch:
            if len(raw) != RECORD_SIZE:
                log.warning("datapath: ignored a %d-byte flow record (want %d)", len(raw),
                            RECORD_SIZE)
        return [raw for raw in batch if len(raw) == RECORD_SIZE]

    def _resolve(self, index: EndpointIndex, who: bytes) -> Resolved:
        src, dst, dport, original = self.keys.addresses(who)
        # No source port in the pair key, and none needed: datapath flows are oriented
        # client -> server, and a client never sends from a service VIP.
        found = peers(index, src, dst, None, dport, self.decoder.node_name)
        svc = index.services.get(original) if original is not None else None
        if svc is not None:  # translated: the service is the VIP the client asked for
            routes = index.routes.get(original, ()) if original is not None else ()
            found = Peers(found.source, found.destination, None, svc, found.node_name, routes)
        return Resolved(self.decoder, found)

    def _sample(self, what: bytes, batch: list[bytes]) -> Flow:
        """A decoded flow of kind `what` (what the metrics look at), from the first record
        of that kind the first time it is seen."""
        flow = self._samples.get(what)
        if flow is None:
            raw = next(r for r in batch if self._what(r) == what)
            if len(self._samples) >= _SAMPLE_LIMIT:
                self._samples.clear()
            flow = self._samples[what] = self.decoder.decode(raw)
        return flow

    # -- the loop ------------------------------------------------------------------------------

    def run(self, dp: Datapath, stop: threading.Event) -> None:
        table = dp.table("flow_events_v1")
        ring = MappedRingBuffer(table.map_fd, table.max_entries, RECORD_SIZE)
        self._lost_seen = dp.events_lost()  # pinned: losses before us are old
        try:
            while not stop.is_set():
                try:
                    batch = ring.read(MAX_BATCH_BYTES)  # consumed: a failure is not retried
                    if batch:
                        self.drain(batch)
                    else:
                        ring.wait(DRAIN_INTERVAL_S)  # a kernel wake-up, or the drain timer
                    self.report_lost(dp.events_lost())
                except Exception:  # a bad batch must not end flow ingestion for good
                    log.exception("flow events: a batch failed; going on with the next")
                    stop.wait(DRAIN_INTERVAL_S)
            while self.drain(ring.read(MAX_BATCH_BYTES)):  # what is left, before we go
                pass
            self.report_lost(dp.events_lost())
        finally:
            ring.close()

    def report_lost(self, lost_total: int) -> None:
        """Record events the kernel could not queue since the last call (ring full)."""
        if lost_total > self._lost_seen:
            n = lost_total - self._lost_seen
            self.ingest.record_lost(LostEventSource.PERF_EVENT_RING_BUFFER, n,
                                    node_name=self.decoder.node_name)
            log.warning("datapath lost %d flow events (ring buffer full)", n)
        self._lost_seen = lost_total
