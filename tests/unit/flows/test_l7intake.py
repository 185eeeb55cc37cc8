"""The waypoint -> agent L7 flow path: compact records in batches, checked one by one,
built into the same flows the waypoint would have built; Hubble JSON lines still accepted."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.flows.flow import Flow, Verdict, flow_to_json
from agent.flows.ingest import FlowIngest
from agent.flows.l7intake import FlowForwarder, L7Intake
from agent.flows.l7record import L7FlowBuilder, L7Record, encode_batch, record_from_json
from agent.flows.store import FlowRing

OK: L7Record = (1_700_000_000_000_000_000, 2_500_000, 200, "GET", "http://echo.shop/x",
                "HTTP/1.1", "shop/orders", "0", "shop/echo:8080", "",
                ("10.244.1.2", 40000), ("10.244.1.254", 15001), "")
DENIED: L7Record = (*OK[:2], 403, "POST", "http://echo.shop/admin", "HTTP/1.1", "", "", "",
                    "POLICY_DENIED", ("10.244.1.3", 40001), ("10.244.1.254", 15001),
                    "TLS handshake refused: no certificate")  # type: ignore[assignment]


@pytest.fixture
def intake(tmp_path: Path) -> L7Intake:
    return L7Intake(tmp_path / "l7.sock", FlowIngest(FlowRing(100)), lambda f: f, "node1")


def stored(intake: L7Intake) -> list[Any]:
    return intake.ingest.ring.get()


def test_records_round_trip_through_a_batch_line(intake: L7Intake) -> None:
    line = encode_batch([OK, DENIED])
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert [record_from_json(v) for v in json.loads(line)] == [OK, DENIED]
    intake.accept(line)
    ok, denied = stored(intake)
    assert isinstance(ok, Flow) and isinstance(denied, Flow)
    want = L7FlowBuilder("node1").flow(OK)
    assert flow_to_json(ok) | {"uuid": ""} == flow_to_json(want) | {"uuid": ""}
    assert ok.l7 is not None and ok.l7.latency_ns == 2_500_000 and ok.node_name == "node1"
    assert denied.verdict == Verdict.DROPPED and denied.drop_reason_desc == "POLICY_DENIED"
    assert denied.summary == "TLS handshake refused: no certificate"
    assert ok.uuid != denied.uuid


@pytest.mark.parametrize(("bad", "why"), [
    ([1, 2], "array of 13 fields"),
    (["x", *list(OK)[1:]], "field 0 must be an integer"),
    ([*list(OK)[:3], 7, *list(OK)[4:]], "field 3 must be a string"),
    ([*list(OK)[:10], ["10.0.0.1"], *list(OK)[11:]], "client must be [ip, port]"),
    ([*list(OK)[:11], ["10.0.0.1", "80"], OK[12]], "local must be [ip, port]"),
    ([*list(OK)[:2], True, *list(OK)[3:]], "field 2 must be an integer"),
])
def test_malformed_records_are_named(bad: list[Any], why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
        record_from_json(bad)


def test_a_bad_record_loses_only_itself(intake: L7Intake, caplog: Any) -> None:
    line = json.dumps([list(OK), ["garbage"], list(DENIED)]).encode()
    intake.accept(line)
    assert len(stored(intake)) == 2 and intake.rejected == 1
    assert "malformed L7 flow" in caplog.text
    intake.accept(b"{not json\n")
    intake.accept(b'"a string"\n')
    assert intake.rejected == 3 and len(stored(intake)) == 2


def test_hubble_json_lines_are_still_accepted(intake: L7Intake) -> None:
    flow = L7FlowBuilder("node9").flow(OK)
    intake.accept(json.dumps(flow_to_json(flow)).encode() + b"\n")
    (got,) = stored(intake)
    assert isinstance(got, Flow) and got.uuid == flow.uuid and got.node_name == "node9"


def test_the_forwarder_delivers_batches_and_counts_loss(tmp_path: Path) -> None:
    path = tmp_path / "l7.sock"
    forwarder = FlowForwarder(path)
    forwarder([OK])  # nobody listening yet: lost, counted, no exception
    assert forwarder.lost == 1
    intake = L7Intake(path, FlowIngest(FlowRing(100)), lambda f: f, "node1").start()
    try:
        forwarder([OK, DENIED])
        forwarder([OK])
        deadline = time.monotonic() + 5
        while len(stored(intake)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(stored(intake)) == 3 and forwarder.lost == 1
    finally:
        intake.stop()
        if forwarder.sock is not None:
            forwarder.sock.close()
