"""The waypoint's tunnel events as flows: batched by `FlowRecorder.record_tunnel`, sent over
the intake socket as their own record kind, checked one by one, built into encrypted L3/L4
flows in Hubble's shape and enriched from the agent's index."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.datapath import drop_reasons
from agent.flows.codec import flow_to_json
from agent.flows.enrich import enrich
from agent.flows.flow import Flow
from agent.flows.fromjson import flow_from_json
from agent.flows.ingest import FlowIngest
from agent.flows.l7intake import FlowForwarder, L7Intake
from agent.flows.l7record import encode_batch, read_batch
from agent.flows.names import DROP_REASONS
from agent.flows.store import FlowRing
from agent.flows.tunnelflow import tunnel_flow, with_identities
from agent.flows.tunnelrecord import (
    TunnelEvent,
    encode_tunnel_batch,
    read_tunnel_batch,
    tunnel_event_from_json,
)
from l7proxy.flows import FlowRecorder, json_lines_sink
from tests.unit.flows.test_l7intake import OK
from tests.unit.flows.tunnelsamples import (
    ACCEPTED,
    DB_ID,
    EVIL_ID,
    REFUSED,
    UNKNOWN_CA,
    WEB_ID,
    index,
)

SHOP_WEB = {
    "identity": 12345,
    "namespace": "shop",
    "labels": ["k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop"],
    "pod_name": "web-0",
    "workloads": [{"name": "web", "kind": "Deployment"}],
}
DATA_DB = {
    "identity": 23456,
    "namespace": "data",
    "labels": ["k8s:app=db", "k8s:io.kubernetes.pod.namespace=data"],
    "pod_name": "db-0",
    "workloads": [{"name": "db", "kind": "StatefulSet"}],
}


def built(event: TunnelEvent) -> Flow:
    """What the agent stores for ``event`` (the intake's steps, without the socket)."""
    ix = index()
    return with_identities(enrich(tunnel_flow(event, "node-2", "f-1"), ix, "node-2"), event)


def test_an_accepted_tunnel_is_an_encrypted_l3_l4_flow_in_hubbles_shape() -> None:
    assert flow_to_json(built(ACCEPTED)) == {
        "time": "2026-12-06T03:00:00.250Z",
        "uuid": "f-1",
        "verdict": "FORWARDED",
        "IP": {
            "source": "10.244.1.5",
            "destination": "10.244.2.7",
            "ipVersion": "IPv4",
            "encrypted": True,
        },
        "l4": {"TCP": {"source_port": 43512, "destination_port": 5432, "flags": {}}},
        "source": SHOP_WEB,
        "destination": DATA_DB,
        "Type": "L3_L4",
        "node_name": "node-2",
        "event_type": {"type": 4, "sub_type": 12},
        "traffic_direction": "INGRESS",
        "trace_observation_point": "FROM_CRYPTO",
        "is_reply": False,
        "tulle": {
            "tunnel": {"side": "server", "peer": "172.18.0.2:15008"},
            "source_spiffe_id": WEB_ID,
            "destination_spiffe_id": DB_ID,
        },
        "Summary": "TCP tunnel accepted (mTLS)",
    }


def test_a_refused_handshake_is_dropped_with_its_reason_and_keeps_the_pods_identity() -> None:
    assert flow_to_json(built(REFUSED)) == {
        "time": "2026-12-06T03:00:00.251Z",
        "uuid": "f-1",
        "verdict": "DROPPED",
        "drop_reason": 253,
        "IP": {
            "source": "10.244.1.5",
            "destination": "10.244.2.7",
            "ipVersion": "IPv4",
            "encrypted": True,
        },
        "l4": {"TCP": {"source_port": 43514, "destination_port": 5432, "flags": {}}},
        "source": SHOP_WEB,
        "destination": DATA_DB,
        "Type": "L3_L4",
        "node_name": "node-2",
        "event_type": {"type": 1, "sub_type": 253},
        "traffic_direction": "EGRESS",
        "trace_observation_point": "TO_CRYPTO",
        "drop_reason_desc": "MTLS_WRONG_IDENTITY",
        "is_reply": False,
        "tulle": {
            "peer_spiffe_id": EVIL_ID,
            "tunnel": {"side": "client", "peer": "172.18.0.3:15008", "detail": REFUSED.detail},
            "source_spiffe_id": WEB_ID,
            "destination_spiffe_id": DB_ID,
        },
        "Summary": "mTLS refused: wrong identity",
    }


def test_the_flow_reads_back_from_its_json() -> None:
    for event in (ACCEPTED, REFUSED, UNKNOWN_CA):
        flow = built(event)
        assert flow_from_json(json.loads(json.dumps(flow_to_json(flow)))) == flow


@pytest.mark.parametrize(
    ("reason", "summary"),
    [
        ("MTLS_UNKNOWN_CA", "mTLS refused: unknown CA"),
        ("MTLS_CERT_EXPIRED", "mTLS refused: certificate expired"),
        ("MTLS_WRONG_IDENTITY", "mTLS refused: wrong identity"),
        ("MTLS_HANDSHAKE_FAILED", "mTLS refused: handshake failed"),
        ("TUNNEL_DESTINATION_NOT_LOCAL", "Tunnel refused: destination not on this node"),
        ("TUNNEL_NO_CERTIFICATE", "Tunnel refused: no certificate for the client's identity"),
        ("TUNNEL_UPSTREAM_FAILED", "Tunnel failed: peer or destination unreachable"),
        ("POLICY_DENIED", "Tunnel refused: policy denied"),
    ],
)
def test_each_refusal_names_its_reason_and_code_from_drop_h(reason: str, summary: str) -> None:
    flow = built(dataclasses.replace(REFUSED, drop_reason=reason))
    assert (flow.summary, flow.drop_reason_desc) == (summary, reason)
    assert flow.drop_reason == drop_reasons.code(reason) == flow.event_type.sub_type  # type: ignore[union-attr]
    assert DROP_REASONS[flow.drop_reason] == reason  # the CLI's table agrees with drop.h


def test_where_no_pod_is_known_the_events_identities_name_the_endpoints() -> None:
    flow = with_identities(tunnel_flow(ACCEPTED, "node-2"), ACCEPTED)
    assert flow.source is not None and flow.source.spiffe_id == WEB_ID
    assert flow.destination is not None and flow.destination.spiffe_id == DB_ID
    assert flow.tulle is not None and not flow.tulle.peer_spiffe_id
    # a server-side refusal of a client presenting no identity: the pod's stays, nothing else
    refused = built(UNKNOWN_CA)
    assert refused.source is not None and refused.source.spiffe_id == WEB_ID
    assert refused.tulle is not None and refused.tulle.peer_spiffe_id == ""


def test_an_unknown_drop_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="NOT_A_REASON.*drop.h"):
        tunnel_flow(dataclasses.replace(REFUSED, drop_reason="NOT_A_REASON"))


# -- the record on the wire -----------------------------------------------------------------


def test_events_round_trip_through_a_tunnel_line() -> None:
    line = encode_tunnel_batch([ACCEPTED, REFUSED, UNKNOWN_CA])
    assert line.startswith(b'{"kind":"tunnel","records":') and line.count(b"\n") == 1
    assert list(read_tunnel_batch(json.loads(line))) == [ACCEPTED, REFUSED, UNKNOWN_CA]


GOOD = json.loads(encode_tunnel_batch([REFUSED]))["records"][0]


def _bad(at: int, value: Any) -> list[Any]:
    row = list(GOOD)
    row[at] = value
    return row


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"a": 1}, "array of 10 fields"),
        (GOOD[:9], "array of 10 fields"),
        (_bad(0, "now"), "time must be nanoseconds"),
        (_bad(0, -1), "time must be nanoseconds"),
        (_bad(1, "middle"), "side must be client or server"),
        (_bad(2, "REDIRECTED"), "verdict must be FORWARDED or DROPPED"),
        (_bad(3, ""), "DROPPED tunnel event must name a drop reason"),
        (_bad(3, 7), "drop reason must be a string"),
        (_bad(4, ["10.0.0.1"]), "source must be \\[ip, port\\]"),
        (_bad(4, ["10.0.0.1", 70000]), "source must be \\[ip, port\\]"),
        (_bad(5, ["db.data", 5432]), "destination address 'db.data' is not an IP"),
        (_bad(6, "web"), "source SPIFFE ID must be a spiffe:// URI"),
        (_bad(7, 5), "destination SPIFFE ID must be a string"),
        (_bad(8, None), "peer must be \\[ip, port\\]"),
        (_bad(8, ["", 15008]), "peer address '' is not an IP"),
        (_bad(4, ["", 0]), "source address '' is not an IP"),  # only the peer may be unknown
        (_bad(5, ["", 0]), "destination address '' is not an IP"),
        (_bad(9, ["x"]), "detail must be a string"),
    ],
)
def test_malformed_events_are_named(bad: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        tunnel_event_from_json(bad)


def test_a_refusal_before_any_peer_was_chosen_is_a_flow_with_no_peer() -> None:
    # the sending end found no waypoint for the destination: peer ("", 0) on the wire
    event = dataclasses.replace(REFUSED, side="client", drop_reason="TUNNEL_UPSTREAM_FAILED",
                                peer=("", 0))
    [decoded] = read_tunnel_batch(json.loads(encode_tunnel_batch([event])))
    assert decoded == event
    flow = tunnel_flow(event, "node-1")
    assert flow.tulle is not None and flow.tulle.tunnel is not None
    assert flow.tulle.tunnel.peer == ""
    assert flow.drop_reason_desc == "TUNNEL_UPSTREAM_FAILED"


def test_a_forwarded_event_with_a_reason_is_refused() -> None:
    row = json.loads(encode_tunnel_batch([ACCEPTED]))["records"][0]
    row[3] = "MTLS_UNKNOWN_CA"
    with pytest.raises(ValueError, match="FORWARDED tunnel event must not name"):
        tunnel_event_from_json(row)


def test_an_older_agent_refuses_a_tunnel_line_rather_than_store_it() -> None:
    """An agent from before tunnel events reads the line as an L7 batch: every record is a
    ValueError (counted, logged), none a flow."""
    got = list(read_batch(json.loads(encode_tunnel_batch([ACCEPTED, REFUSED]))))
    assert got and all(isinstance(r, ValueError) for r in got)


# -- the agent's intake -----------------------------------------------------------------------


@pytest.fixture
def intake(tmp_path: Path) -> L7Intake:
    ix = index()
    return L7Intake(
        tmp_path / "l7.sock", FlowIngest(FlowRing(100)), lambda f: enrich(f, ix, "node-2"), "node-2"
    )


def test_a_malformed_tunnel_record_loses_only_itself(intake: L7Intake, caplog: Any) -> None:
    line = json.loads(encode_tunnel_batch([ACCEPTED, REFUSED]))
    line["records"].insert(1, _bad(1, "middle"))
    line["records"].append(_bad(3, "NOT_IN_DROP_H"))
    intake.accept(json.dumps(line).encode())
    got = intake.ingest.ring.get()
    assert [f.verdict for f in got] == ["FORWARDED", "DROPPED"]
    assert all(f.ip is not None and f.ip.encrypted for f in got)
    assert intake.rejected == 2
    assert "side must be client or server" in caplog.text and "NOT_IN_DROP_H" in caplog.text
    intake.accept(b'{"kind":"tunnel","records":{}}')  # no array: named, counted
    assert intake.rejected == 3 and "records must be an array" in caplog.text


def test_tunnel_lines_and_l7_lines_share_one_connection(intake: L7Intake) -> None:
    """Through the socket: a bad tunnel line between good ones neither stops the reader nor
    costs the lines after it, and the L7 batches still arrive (old records still read)."""
    intake.start()
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(intake.path))
            conn.sendall(
                encode_tunnel_batch([ACCEPTED])
                + b'{"kind":"tunnel","records":[1]}\n'
                + encode_batch([OK])
                + b"not json\n"
                + encode_tunnel_batch([REFUSED])
            )
            deadline = time.monotonic() + 5
            while len(intake.ingest.ring.get()) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        got = intake.ingest.ring.get()
        assert [(f.summary, bool(f.ip and f.ip.encrypted)) for f in got] == [
            ("TCP tunnel accepted (mTLS)", True),
            ("", False),
            ("mTLS refused: wrong identity", True),
        ]
        assert got[1].l7 is not None and intake.rejected == 2
    finally:
        intake.stop()


# -- the waypoint's side: batching, bounds, the forwarder ----------------------------------


class TunnelSink:
    """A record sink that takes tunnel events, as the forwarder does."""

    raw_records = True

    def __init__(self) -> None:
        self.batches: list[list[TunnelEvent]] = []

    def __call__(self, records: Sequence[Any], column: bytes = b"") -> None:
        pass

    def send_tunnel(self, events: Sequence[TunnelEvent]) -> None:
        self.batches.append(list(events))


def test_the_recorder_batches_events_on_its_timer_and_in_full_batches() -> None:
    sink = TunnelSink()

    async def main() -> None:
        recorder = FlowRecorder(sink, batch=3, interval=0.05)
        recorder.record_tunnel(ACCEPTED)
        recorder.record_tunnel(REFUSED)
        assert sink.batches == []  # waiting for the timer or a full batch
        await asyncio.sleep(0.2)
        assert sink.batches == [[ACCEPTED, REFUSED]]
        for _ in range(3):
            recorder.record_tunnel(UNKNOWN_CA)
        assert sink.batches[-1] == [UNKNOWN_CA] * 3  # full: sent at once

    asyncio.run(main())


def test_the_recorder_holds_a_bounded_number_and_counts_what_it_drops() -> None:
    sink = TunnelSink()

    async def main() -> FlowRecorder:
        recorder = FlowRecorder(sink, batch=100, interval=10, max_tunnel_pending=2)
        for event in (ACCEPTED, REFUSED, UNKNOWN_CA):
            recorder.record_tunnel(event)
        recorder.flush()
        return recorder

    recorder = asyncio.run(main())
    assert sink.batches == [[REFUSED, UNKNOWN_CA]]  # the oldest went
    assert recorder.losses()["tunnel_overflow"] == 1


def test_a_record_sink_without_tunnel_events_loses_them_counted() -> None:
    class OldSink:
        raw_records = True

        def __call__(self, records: Sequence[Any], column: bytes = b"") -> None:
            pass

    recorder = FlowRecorder(OldSink())
    recorder.record_tunnel(ACCEPTED)  # no running loop: sent (here: lost) at once
    assert recorder.losses()["tunnel_overflow"] == 1


def test_a_flow_sink_in_process_gets_the_tunnel_flows() -> None:
    lines: list[str] = []
    recorder = FlowRecorder(json_lines_sink(lines.append), node_name="node-1")
    recorder.record_tunnel(REFUSED)
    recorder.record_tunnel(dataclasses.replace(REFUSED, drop_reason="NOT_IN_DROP_H"))
    [flow] = [json.loads(line)["flow"] for line in "".join(lines).splitlines()]
    assert flow["IP"]["encrypted"] is True and flow["node_name"] == "node-1"
    assert flow["tulle"]["destination_spiffe_id"] == EVIL_ID  # no index here: the event's
    assert recorder.losses()["tunnel_overflow"] == 1  # the unknown reason: not a flow


def test_waypoint_events_reach_the_agents_ring_through_the_socket(intake: L7Intake) -> None:
    """record_tunnel -> FlowRecorder -> FlowForwarder -> socket -> L7Intake -> the ring."""
    absent = FlowForwarder(intake.path.with_name("absent.sock"))
    FlowRecorder(absent).record_tunnel(ACCEPTED)  # no agent there: lost, counted
    assert absent.losses()["agent_unavailable"] == 1
    forwarder = FlowForwarder(intake.path)
    recorder = FlowRecorder(forwarder, node_name="node-2")
    intake.start()
    try:
        recorder.record_tunnel(ACCEPTED)
        recorder.record_tunnel(REFUSED)
        deadline = time.monotonic() + 5
        while len(intake.ingest.ring.get()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        got = intake.ingest.ring.get()
        assert [flow_to_json(f) | {"uuid": ""} for f in got] == [
            flow_to_json(built(ACCEPTED)) | {"uuid": ""},
            flow_to_json(built(REFUSED)) | {"uuid": ""},
        ]
        assert got[0].uuid != got[1].uuid
    finally:
        forwarder.close()
        intake.stop()
