"""`FlowMetrics`: Hubble-style Prometheus metrics computed from flows.

The agent calls `observe(flow)` (or `observe_many(flows)`) for every flow it stores, on the
ingestion path (the datapath's reader calls `observe_counts` once per batch, with one
sample flow per kind of record and its count), and `observe_lost(source, n)` wherever it
counts lost events. Counts live in plain per-family cells (see `agent.metrics.series`)
behind one lock; the Prometheus families are built only when scraped (`collect`), so a
flow costs a few dict lookups and integer additions instead of one locked prometheus_client
child update per series.

Families (labels as in `agent.metrics.config.FAMILY_LABELS`):

- ``tulle_flows_processed_total{type,subtype,verdict,protocol}``: every flow. ``type`` is
  Hubble's monitor type (Trace, Drop, L7, PolicyVerdict, SockTrace…), ``subtype`` the trace
  observation point (``to-endpoint``…) or the L7 protocol (``HTTP``);
- ``tulle_drop_total{reason,protocol}``: DROPPED flows by ``drop_reason_desc``;
- ``tulle_tcp_flags_total{flag,family}``: SYN, SYN-ACK, FIN and RST on forwarded TCP flows;
- ``tulle_policy_verdicts_total{direction,action}``: policy-verdict events, and drops whose
  reason is a policy decision (Tulle's datapath reports denials as drops);
- ``tulle_http_requests_total{method,code,source_workload,destination_workload}`` and
  ``tulle_http_request_duration_seconds{method,source_workload,destination_workload}``:
  from L7 RESPONSE flows (one per request; the client is the response's destination),
  duration from ``l7.latency_ns`` (responses without a latency are not observed);
- ``tulle_lost_events_total{source}``: from `observe_lost`;
- the kernel connection-trace families of `agent.metrics.kernel` (connect latency and RTT
  histograms, retransmits, kernel drops by the kernel's reason);
- ``tulle_request_split_seconds{part,source_workload,destination_workload}``
  (`agent.metrics.split`): where L7 requests spent their time;
- the encryption families of `agent.metrics.encryption`: encrypted flows, and refused mTLS
  tunnels by reason;
- ``tulle_metrics_label_overflow_total{metric,label}``: observations whose labels collapsed
  into the overflow value.

With ``MetricsConfig.hubble_names`` the families Hubble also has are exposed as
``hubble_…`` with Hubble's label names (``code`` -> ``status``), for Hubble's dashboards,
and with Hubble's extra labels (`HUBBLE_ONLY_LABELS`): ``match`` on policy verdicts
(Hubble's match type: ``none`` for a denial, ``l7/http`` for the waypoint's), ``protocol``
(``HTTP/1.1``…) and ``reporter`` on HTTP requests and durations. ``reporter`` follows
Hubble (``server`` for an ingress flow, ``client`` for egress); the waypoint's flows carry
no direction, and it serves the client's node (the kernel redirects at the client), so they
are ``client``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from agent.flows.flow import (
    TCP,
    Endpoint,
    Flow,
    FlowType,
    L7Type,
    Verdict,
)
from agent.flows.ingest import TcpCloses
from agent.flows.names import (
    EVENT_AGENT,
    EVENT_CAPTURE,
    EVENT_DEBUG,
    EVENT_DROP,
    EVENT_L7,
    EVENT_POLICY_VERDICT,
    EVENT_TRACE,
    EVENT_TRACE_SOCK,
    POLICY_MATCH_TYPES,
    TRACE_POINT_BY_ENUM,
    TRACE_POINTS,
    LostEventSource,
)
from agent.metrics.config import FAMILY_LABELS, MetricsConfig
from agent.metrics.encryption import ENCRYPTION_HELP, EncryptionSeries
from agent.metrics.http import HttpSeries
from agent.metrics.kernel import KERNEL_HELP, KernelSeries, histogram_buckets
from agent.metrics.series import Cell, Series
from agent.metrics.split import SPLIT_HELP, SplitSeries
from agent.servicemap.peers import workload_label

_TYPE_NAMES = {
    EVENT_DROP: "Drop", EVENT_DEBUG: "Debug", EVENT_CAPTURE: "Capture", EVENT_TRACE: "Trace",
    EVENT_POLICY_VERDICT: "PolicyVerdict", EVENT_TRACE_SOCK: "SockTrace", EVENT_L7: "L7",
    EVENT_AGENT: "Agent",
}
_L4_NAMES = {"TCP": "TCP", "UDP": "UDP", "ICMPv4": "ICMPv4", "ICMPv6": "ICMPv6"}
POLICY_DROP_REASONS = frozenset({"POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED"})
_DROPPED, _FORWARDED = Verdict.DROPPED, Verdict.FORWARDED
_RESPONSE = L7Type.RESPONSE
_EP_CACHE_LIMIT = 4096

_HELP = {
    "flows_processed": "Flows processed, by event type, subtype, verdict and protocol.",
    "drop": "Dropped flows, by drop reason and protocol.",
    "tcp_flags": "TCP flags seen on forwarded flows, by flag and IP family.",
    "policy_verdicts": "Policy verdicts, by traffic direction and action.",
    "http_requests": "HTTP requests (from L7 response flows), by method, status code, and "
                     "source and destination workload.",
    "http_request_duration_seconds": "HTTP request latency seen by the waypoint, in seconds.",
    **KERNEL_HELP,
    **SPLIT_HELP,
    **ENCRYPTION_HELP,
}


def _counter_cell() -> Cell:
    return [0]


def _protocol(l4cls: type, l7kind: int) -> str:
    if l7kind == 2:
        return "HTTP"
    return _L4_NAMES.get(l4cls.__name__, "unknown")


def _flow_labels(etype: int, esub: int | str, verdict: str, l4cls: type, l7kind: int,
                 ftype: str) -> tuple[str, str, str, str]:
    """(type, subtype, verdict, protocol) of flows_processed, from its raw key."""
    if etype >= 0:
        typ = _TYPE_NAMES.get(etype, "Unknown")
    elif l7kind or ftype == FlowType.L7:
        typ = "L7"
    elif verdict == _DROPPED:
        typ = "Drop"
    elif ftype == FlowType.SOCK:
        typ = "SockTrace"
    else:
        typ = "Trace"
    sub = ""
    if typ == "Trace":
        point = esub if isinstance(esub, int) else TRACE_POINT_BY_ENUM.get(esub, -1)
        sub = TRACE_POINTS[point][0] if point in TRACE_POINTS else ""
    elif typ == "L7":
        sub = "HTTP" if l7kind == 2 else ""
    return typ, sub, str(verdict), _protocol(l4cls, l7kind)


class FlowMetrics:
    """Counts flows into Prometheus families; a prometheus_client collector.

    ``FlowMetrics(config, registry)`` registers itself with `registry` when given. Writers
    may be several threads (the datapath reader, the waypoint's L7 events): each call takes
    one lock, and `observe_many` takes it once per batch.
    """

    def __init__(self, config: MetricsConfig | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.config = cfg = config or MetricsConfig()
        self._lock = threading.Lock()
        self._overflow: dict[tuple[str, str], int] = {}
        self._lost: dict[str, int] = {}
        self._ep_cache: dict[int, tuple[Endpoint, str]] = {}

        def series(family: str, suffix: str = "_total", histogram: int = 0) -> Series | None:
            """`histogram`: its number of bounds (cells add +Inf and the sum); 0: counter."""
            fam = cfg.family(family)
            if not fam.enabled:
                return None
            s = Series(
                cfg.metric_name(family, suffix), FAMILY_LABELS[family], cfg.labels_of(family),
                max_values=fam.max_label_values or cfg.max_label_values,
                max_series=fam.max_series or cfg.max_series,
                overflow_value=cfg.overflow_value,
                overflow=self._overflow,
                new_cell=(lambda: [0] * (histogram + 2)) if histogram else _counter_cell,
            )
            s.labels = cfg.exposed_labels(family)  # same order, maybe Hubble's names
            return s

        self._flows = series("flows_processed")
        self._drops = series("drop")
        self._flags = series("tcp_flags")
        self._policy = series("policy_verdicts")
        self._kernel = KernelSeries(series, cfg.tcp_connect_buckets, cfg.tcp_rtt_buckets,
                                    self._workload)
        self._split = SplitSeries(series, cfg.request_split_buckets)
        self._https = HttpSeries(series, cfg.http_duration_buckets, self._workload, self._split)
        self._encryption = EncryptionSeries(series)
        self._lost_name = cfg.metric_name("lost_events")
        if registry is not None:
            registry.register(self)

    # -- the hot path ------------------------------------------------------------------------

    def observe(self, flow: Flow) -> None:
        with self._lock:
            self._observe(flow)

    def observe_many(self, flows: Iterable[Flow]) -> None:
        self.observe_counts((flow, 1) for flow in flows)

    def observe_counts(self, counts: Iterable[tuple[Flow, int]]) -> None:
        """Observe each flow as if it had been seen `n` times (the datapath's batches)."""
        with self._lock:
            observe = self._observe
            for flow, n in counts:
                observe(flow, n)

    def observe_closes(self, closes: Iterable[TcpCloses]) -> None:
        """The tracer's connection measurements by column (their flows' other counts come
        through `observe_counts`, with samples that carry no measurement)."""
        with self._lock:
            observe = self._kernel.observe_closes
            for group in closes:
                observe(group)

    def observe_lost(self, source: LostEventSource | str, count: int) -> None:
        """Count `count` events lost at `source` (as `FlowRing.record_lost` is told)."""
        if count <= 0:
            return
        key = str(source).lower()
        with self._lock:
            self._lost[key] = self._lost.get(key, 0) + count

    def _observe(self, flow: Flow, n: int = 1) -> None:
        verdict = flow.verdict
        et = flow.event_type
        l4cls = flow.l4.__class__
        l7 = flow.l7
        l7kind = 0 if l7 is None else (1 if l7.http is None else 2)
        esub: int | str
        if et is None:
            etype, esub = -1, flow.trace_observation_point
        else:
            etype, esub = et.type, et.sub_type
        dropped = verdict == _DROPPED

        s = self._flows
        if s is not None:
            raw: tuple[Any, ...] = (etype, esub, verdict, l4cls, l7kind, flow.type)
            cell = s.cache.get(raw)
            if cell is None:
                cell = s.admit(raw, _flow_labels(etype, esub, verdict, l4cls, l7kind, flow.type))
            cell[0] += n
        if flow.ip is not None and flow.ip.encrypted:
            self._encryption.observe(flow, (etype, esub, verdict, l4cls, l7kind, flow.type),
                                     _flow_labels, n)

        if dropped:
            s = self._drops
            desc = flow.drop_reason_desc
            if s is not None:
                raw = (desc, flow.drop_reason, l4cls, l7kind)
                cell = s.cache.get(raw)
                if cell is None:
                    reason = desc or (f"DROP_REASON_{flow.drop_reason}" if flow.drop_reason
                                      else "DROP_REASON_UNKNOWN")
                    cell = s.admit(raw, (reason, _protocol(l4cls, l7kind)))
                cell[0] += n
            if desc in POLICY_DROP_REASONS and etype != EVENT_POLICY_VERDICT:
                # A denial matched no rule; the waypoint's is an L7 decision.
                match = "l7/http" if l7kind == 2 else "none"
                self._count_policy(flow.traffic_direction, verdict, n, match)
        elif l4cls is TCP and verdict == _FORWARDED and self._flags is not None:
            self._count_flags(flow, n)

        if etype == EVENT_POLICY_VERDICT:
            match = ("l7/http" if l7kind == 2 else
                     POLICY_MATCH_TYPES.get(flow.policy_match_type, "unknown").lower())
            self._count_policy(flow.traffic_direction, verdict, n, match)

        if l7kind == 2 and l7 is not None and l7.type == _RESPONSE:
            self._https.observe(flow, l7, l7.http, n)  # type: ignore[arg-type]
        elif (tulle := flow.tulle) is not None and (tulle.tcp or tulle.kernel_drop_reason):
            self._kernel.observe(flow, tulle, n)

    def _count_flags(self, flow: Flow, n: int) -> None:
        flags = flow.l4.flags  # type: ignore[union-attr]
        if not (flags.SYN or flags.FIN or flags.RST):
            return
        s = self._flags
        assert s is not None
        family = flow.ip.ip_version if flow.ip is not None else "unknown"
        for present, name in ((flags.SYN, "SYN-ACK" if flags.ACK else "SYN"),
                              (flags.FIN, "FIN"), (flags.RST, "RST")):
            if present:
                raw = (name, family)
                cell = s.cache.get(raw)
                if cell is None:
                    cell = s.admit(raw, (name, str(family)))
                cell[0] += n

    def _count_policy(self, direction: str, verdict: str, n: int, match: str) -> None:
        s = self._policy
        if s is None:
            return
        raw = (direction, verdict, match)
        cell = s.cache.get(raw)
        if cell is None:
            word = str(direction).lower()
            cell = s.admit(raw, (word if word in ("ingress", "egress") else "unknown", match,
                                 str(verdict).lower()))
        cell[0] += n

    def _workload(self, ep: Endpoint | None) -> str:
        if ep is None:
            return "unknown"
        hit = self._ep_cache.get(id(ep))
        if hit is not None and hit[0] is ep:
            return hit[1]
        label = workload_label(ep)
        if len(self._ep_cache) >= _EP_CACHE_LIMIT:
            self._ep_cache.clear()
        self._ep_cache[id(ep)] = (ep, label)  # holding `ep` keeps its id from being reused
        return label

    # -- scraping ----------------------------------------------------------------------------

    def _families(self) -> list[tuple[str, Series | None]]:
        return [("flows_processed", self._flows), ("drop", self._drops),
                ("tcp_flags", self._flags), ("policy_verdicts", self._policy),
                ("http_requests", self._https.requests), *self._kernel.families(),
                *self._encryption.families()]

    def _histograms(self) -> list[tuple[str, Series | None, tuple[float, ...]]]:
        cfg = self.config
        return [("http_request_duration_seconds", self._https.durations,
                 cfg.http_duration_buckets),
                ("tcp_connect_duration_seconds", self._kernel.connect, cfg.tcp_connect_buckets),
                ("tcp_rtt_seconds", self._kernel.rtt, cfg.tcp_rtt_buckets),
                ("request_split_seconds", self._split.hist, cfg.request_split_buckets)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._split.flush()  # its cells lack the splits still pending
            counters = [(fam, s, s.snapshot()) for fam, s in self._families() if s is not None]
            histograms = [(fam, s, bounds, s.snapshot())
                          for fam, s, bounds in self._histograms() if s is not None]
            lost = dict(self._lost)
            overflow = dict(self._overflow)
        for family, s, rows in counters:
            m = CounterMetricFamily(s.name, _HELP[family], labels=s.labels)
            for labels, cell in sorted(rows):
                m.add_metric(labels, cell[0])
            yield m
        for family, s, bounds, hrows in histograms:
            h = HistogramMetricFamily(s.name, _HELP[family], labels=s.labels)
            for labels, cell in sorted(hrows):
                buckets, total = histogram_buckets(bounds, cell)
                h.add_metric(list(labels), buckets, total)
            yield h
        m = CounterMetricFamily(self._lost_name,
                                "Events lost before reaching the flow store, by source.",
                                labels=["source"])
        for source, n in sorted(lost.items()):
            m.add_metric([source], n)
        yield m
        m = CounterMetricFamily(
            "tulle_metrics_label_overflow_total",
            "Observations whose label values collapsed into the overflow value because a "
            "cardinality cap was reached (label=\"*\": the family's series cap).",
            labels=["metric", "label"])
        for (metric, label), n in sorted(overflow.items()):
            m.add_metric([metric, label], n)
        yield m

    def describe(self) -> Iterator[Metric]:
        """The families' names, for the registry's duplicate check (no values)."""
        for family, s in self._families():
            if s is not None:
                yield CounterMetricFamily(s.name, _HELP[family], labels=s.labels)
        for family, s, _ in self._histograms():
            if s is not None:
                yield HistogramMetricFamily(s.name, _HELP[family], labels=s.labels)
        yield CounterMetricFamily(self._lost_name, "", labels=["source"])
        yield CounterMetricFamily("tulle_metrics_label_overflow_total", "",
                                  labels=["metric", "label"])
