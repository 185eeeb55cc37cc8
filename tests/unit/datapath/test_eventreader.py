"""The datapath event reader: raw records in, the same flows and metrics out as decoding and
enriching every record at once would give, built only when read."""

from __future__ import annotations

import ctypes
import dataclasses
import socket
from typing import Any

import pytest

from agent.datapath import drop_reasons
from agent.datapath.eventreader import EventReader
from agent.datapath.flowevents import EventDecoder, FlowEventLayout, RecordKeys
from agent.flows.enrich import EndpointIndex, enrich
from agent.flows.flow import Flow, LostEvent, Service, Verdict
from agent.flows.ingest import FlowIngest
from agent.flows.store import FlowRing
from agent.metrics.flowmetrics import FlowMetrics

CLIENT, BACKEND, VIP, WORLD = "10.244.1.2", "10.244.2.3", "10.96.0.50", "8.8.8.8"
NEW, DROP, CLOSE = 1, 2, 3


def index(backend_name: str = "echo-1") -> EndpointIndex:
    return EndpointIndex.build(
        pods=[
            {"ip": CLIENT, "namespace": "shop", "name": "client-1", "labels": {"app": "client"},
             "identity": 300, "workload": {"kind": "Deployment", "name": "client"}},
            {"ip": BACKEND, "namespace": "shop", "name": backend_name, "labels": {"app": "echo"},
             "identity": 400},
        ],
        services=[{"cluster_ip": VIP, "port": 80, "namespace": "shop", "name": "echo"}],
        nodes=[{"ip": "10.240.0.11", "name": "node1"}],
        local_node="node1",
    )


def be32(ip: str) -> int:
    return int.from_bytes(socket.inet_aton(ip), "little")


def be16(port: int) -> int:
    return int.from_bytes(port.to_bytes(2, "big"), "little")


def record(src: str = CLIENT, dst: str = BACKEND, sport: int = 40000, dport: int = 8080, *,
           kind: int = NEW, verdict: int = 6, vip: str | None = VIP, flags: int = 0x02,
           reason: int = 0, ts: int = 1_000, **extra: int) -> bytes:
    ev = FlowEventLayout()
    ev.ts_ns, ev.saddr, ev.daddr = ts, be32(src), be32(dst)
    ev.sport, ev.dport, ev.proto = be16(sport), be16(dport), 6
    if vip is not None:
        ev.orig_daddr, ev.orig_dport = be32(vip), be16(80)
    ev.type, ev.verdict, ev.dir, ev.obs_point, ev.tcp_flags = kind, verdict, 2, 3, flags
    ev.drop_reason = reason
    for name, value in extra.items():
        setattr(ev, name, value)
    return bytes(ev)


class Reader:
    def __init__(self) -> None:
        self.index = index()
        self.decoder = EventDecoder("node1")
        self.ring = FlowRing(1000)
        self.metrics = FlowMetrics()
        self.reader = EventReader(self.decoder, FlowIngest(self.ring, (self.metrics,)),
                                  lambda: self.index)

    def feed(self, *raws: bytes) -> int:
        return self.reader.drain(list(raws))

    def eager(self, raw: bytes) -> Flow:
        """Decode and enrich at once, as the agent did before deferring."""
        flow = self.decoder.decode(raw)
        ev = FlowEventLayout.from_buffer_copy(raw)
        if ev.orig_daddr:
            svc = self.index.services.get((socket.inet_ntoa(raw[16:20]), 80))
            flow = dataclasses.replace(flow, destination_service=svc)
        return enrich(flow, self.index, "node1")


def counts(metrics: FlowMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in metrics.collect():
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture
def r() -> Reader:
    return Reader()


def test_keys_match_the_c_layout() -> None:
    keys = RecordKeys.of()
    assert keys.who == (FlowEventLayout.saddr.offset,  # type: ignore[attr-defined]
                        FlowEventLayout.orig_dport.offset + 2)  # type: ignore[attr-defined]
    raw = record()
    assert keys.addresses(raw[keys.who[0]:keys.who[1]]) == (CLIENT, BACKEND, 8080, (VIP, 80))
    assert keys.addresses(record(vip=None)[keys.who[0]:keys.who[1]])[3] is None


def test_layout_order_is_enforced() -> None:
    class Shuffled(ctypes.Structure):
        _fields_ = [("saddr", ctypes.c_uint32), ("dport", ctypes.c_uint16),
                    ("daddr", ctypes.c_uint32)]

    with pytest.raises(ValueError, match="adjacent"):
        RecordKeys.of(Shuffled)


def test_flows_are_the_eager_ones_built_when_read(r: Reader) -> None:
    raws = [
        record(sport=40000 + i, ts=1_000 + i, kind=NEW if i % 2 else CLOSE,
               packets_fwd=i, bytes_fwd=100 * i, duration_ns=5 * i)
        for i in range(20)
    ] + [
        record(WORLD, CLIENT, 5555, 22, kind=DROP, verdict=2, vip=None, reason=133,
               drop_file=1, drop_line=77, ts=3_000),
        record(BACKEND, WORLD, 8080, 443, vip=None, verdict=1, ts=3_001),
    ]
    assert r.feed(*raws) == len(raws)
    assert all(type(slot) is bytes for slot in r.ring._buf[: len(raws)])  # nothing built yet
    got, _ = r.ring.snapshot()
    assert list(got) == [r.eager(raw) for raw in raws]
    assert not any(type(slot) is bytes for slot in r.ring._buf[: len(raws)])  # built once
    first = got[0]
    assert isinstance(first, Flow) and first.destination_service == Service("echo", "shop")
    assert first.source is not None and first.source.pod_name == "client-1"
    dropped = got[20]
    assert isinstance(dropped, Flow) and dropped.verdict == Verdict.DROPPED
    assert dropped.drop_reason_desc == drop_reasons.by_code(133).name
    assert dropped.source is not None and dropped.source.labels == ("reserved:world",)


def test_metrics_count_every_record(r: Reader) -> None:
    raws = [record(sport=40000 + i, flags=0x02 if i % 3 else 0x11) for i in range(30)]
    raws += [record(WORLD, CLIENT, kind=DROP, verdict=2, vip=None, reason=133)] * 4
    r.feed(*raws[:10])
    r.feed(*raws[10:])
    eager = FlowMetrics()
    for raw in raws:
        eager.observe(r.eager(raw))
    assert counts(r.metrics) == counts(eager)
    assert counts(r.metrics)[("tulle_flows_processed_total", (
        ("protocol", "TCP"), ("subtype", "from-endpoint"), ("type", "Trace"),
        ("verdict", "TRANSLATED")))] == 30


def test_enrichment_uses_the_index_of_ingestion(r: Reader) -> None:
    r.feed(record(ts=1))
    r.index = index("echo-renamed")  # the endpoints changed after the first record
    r.feed(record(ts=2))
    old, new = r.ring.get()
    assert isinstance(old, Flow) and isinstance(new, Flow)
    assert old.destination is not None and old.destination.pod_name == "echo-1"
    assert new.destination is not None and new.destination.pod_name == "echo-renamed"


def test_short_records_are_skipped_not_stored(r: Reader, caplog: Any) -> None:
    assert r.feed(record()[:40], record()) == 1
    assert "ignored a 40-byte flow record" in caplog.text
    assert r.ring.stats().seen_flows == 1


def test_lost_events_are_reported_once(r: Reader) -> None:
    r.reader.report_lost(0)
    r.reader.report_lost(5)
    r.reader.report_lost(5)
    r.reader.report_lost(7)
    lost = [rec for rec in r.ring.get() if isinstance(rec, LostEvent)]
    assert [e.num_events_lost for e in lost] == [5, 2]
    assert r.ring.stats().lost == {"PERF_EVENT_RING_BUFFER": 7}


def test_last_n_builds_only_what_it_returns(r: Reader) -> None:
    r.feed(*[record(sport=1000 + i, ts=i) for i in range(100)])
    last = r.ring.get(5)
    assert [f.time for f in last] == [r.decoder.offset_ns + t for t in range(95, 100)]
    assert sum(type(slot) is bytes for slot in r.ring._buf[:100]) == 95
    assert r.ring.flows_rate() >= 0  # reads deferred slots' times without building them
    assert sum(type(slot) is bytes for slot in r.ring._buf[:100]) == 95



def test_the_pair_cache_is_bounded(r: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.datapath.eventreader.PEER_CACHE_LIMIT", 10)
    for i in range(40):  # forty different outside clients
        r.feed(record(f"192.0.2.{i + 1}", CLIENT, vip=None, verdict=1))
        assert len(r.reader._resolved) <= 11
    got = r.ring.get()
    assert [f.ip.source for f in got if isinstance(f, Flow) and f.ip] == [
        f"192.0.2.{i + 1}" for i in range(40)]


def test_a_reply_flow_names_the_backend_as_source_and_the_service_as_its_service(
    r: Reader,
) -> None:
    """EVENT_REPLY shares the connection's pair key (recorded as opened); the reader flips
    the resolved pair for it, so the reply's source is the backend and its source service
    the VIP's."""
    new = record(sport=40100, ts=10)
    reply = record(sport=40100, ts=11, kind=4, verdict=6, flags=0x12, src_identity=300,
                   dst_identity=400)
    assert r.feed(new, reply) == 2
    got, _ = r.ring.snapshot()
    opened, back = got[0], got[1]
    assert isinstance(opened, Flow) and isinstance(back, Flow)
    assert back.is_reply is True and back.ip is not None
    assert (back.ip.source, back.ip.source_xlated, back.ip.destination) == (BACKEND, VIP, CLIENT)
    assert back.source is not None and back.source.pod_name == "echo-1"
    assert back.destination is not None and back.destination.pod_name == "client-1"
    assert back.source_service == Service("echo", "shop") and back.destination_service is None
    assert (back.source.identity, back.destination.identity) == (400, 300)
    assert opened.is_reply is False and opened.ip is not None and opened.ip.source_xlated == ""
    assert opened.destination_service == Service("echo", "shop")
