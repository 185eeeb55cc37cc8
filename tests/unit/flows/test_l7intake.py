"""The waypoint -> agent L7 flow path: compact records in batches, checked one by one,
built into the same flows the waypoint would have built; Hubble JSON lines still accepted."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.flows.flow import Flow, Verdict, flow_from_json, flow_to_json
from agent.flows.ingest import FlowIngest
from agent.flows.l7flow import L7FlowBuilder
from agent.flows.l7intake import FlowForwarder, L7Intake
from agent.flows.l7record import (
    L7Record,
    decode_column,
    encode_batch,
    pack_lean,
    pack_marks,
    record_from_json,
)
from agent.flows.policyjson import network_policy
from agent.flows.reqsplit import LEAN, PARTS, RAW
from agent.flows.store import FlowRing
from l7proxy.flows import FlowLossCollector, FlowRecorder
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer

OK: L7Record = (1_700_000_000_000_000_000, 2_500_000, 200, "GET", "http://echo.shop/x",
                "HTTP/1.1", "shop/orders", "0", "shop/echo:8080", "",
                ("10.244.1.2", 40000), ("10.244.1.254", 15001), "",
                (40, 300_000, 0, 0, 900_000, 950_000, 960_000, 60),
                (("shop/client-out",), ("shop/allow-web", "shop/allow-all")), None, None)
DENIED: L7Record = (*OK[:2], 403, "POST", "http://echo.shop/admin", "HTTP/1.1", "", "", "",
                    "POLICY_DENIED", ("10.244.1.3", 40001), ("10.244.1.254", 15001),
                    "TLS handshake refused: no certificate", None, None, None, None)  # type: ignore[assignment]


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
    assert ok.tulle is not None and ok.tulle.request is not None
    assert ok.tulle.request.backend_ns == 600_000 - 60_000 + 10_000
    assert denied.tulle is not None and denied.tulle.request is None


def test_a_record_without_timing_marks_is_still_read() -> None:
    """A waypoint from before the split sends 13 fields: read, with no split."""
    assert record_from_json(json.loads(encode_batch([OK]))[0][:13])[13] is None


def test_a_record_without_policy_names_is_still_read() -> None:
    """A waypoint from before policy names sends 14 fields: read, naming no policy."""
    old = record_from_json(json.loads(encode_batch([OK]))[0][:14])
    assert old == (*OK[:14], None, None, None)
    flow = L7FlowBuilder("node1").flow(old)
    assert flow.egress_allowed_by == flow.ingress_allowed_by == ()


def test_a_grpc_record_carries_its_status_as_a_header_and_older_records_none() -> None:
    grpc = (*OK[:4], "http://greeter.shop/helloworld.Greeter/SayHello", "HTTP/2", *OK[6:16], 12)
    [read] = [record_from_json(v) for v in json.loads(encode_batch([grpc]))]  # type: ignore[list-item]
    assert read[16] == 12
    flow = L7FlowBuilder("node1").flow(read)
    assert flow.l7 is not None and flow.l7.http is not None
    assert [(h.key, h.value) for h in flow.l7.http.headers] == [("grpc-status", "12")]
    sixteen = record_from_json(json.loads(encode_batch([OK]))[0][:16])
    assert sixteen[16] is None
    plain = L7FlowBuilder("node1").flow(sixteen)
    assert plain.l7 is not None and plain.l7.http is not None and plain.l7.http.headers == ()
    bad = json.loads(encode_batch([grpc]))[0]  # type: ignore[list-item]
    bad[16] = "12"
    with pytest.raises(ValueError, match="grpc-status"):
        record_from_json(bad)


def test_an_allowed_flow_names_both_sides_and_a_denied_one_none(intake: L7Intake) -> None:
    intake.accept(encode_batch([OK, DENIED]))
    ok, denied = stored(intake)
    assert ok.egress_allowed_by == (network_policy("shop/client-out"),)
    assert ok.ingress_allowed_by == (network_policy("shop/allow-web"),
                                     network_policy("shop/allow-all"))
    out = flow_to_json(ok)
    assert [p["name"] for p in out["ingress_allowed_by"]] == ["allow-web", "allow-all"]
    assert flow_from_json(json.loads(json.dumps(out))).egress_allowed_by == ok.egress_allowed_by
    # Hubble: a NetworkPolicy default-deny drop names no policy (there are no deny rules).
    assert denied.verdict == Verdict.DROPPED
    assert not (denied.egress_allowed_by or denied.ingress_allowed_by
                or denied.egress_denied_by or denied.ingress_denied_by)


WEB_ID = "spiffe://cluster.local/ns/shop/sa/web"
ECHO_ID = "spiffe://cluster.local/ns/shop/sa/echo"


def test_a_tunnelled_hop_is_an_encrypted_flow_naming_both_identities(intake: L7Intake) -> None:
    tunnelled: L7Record = (*OK[:15], (WEB_ID, ECHO_ID), None)  # type: ignore[assignment]
    line = encode_batch([tunnelled, OK])
    assert [record_from_json(v) for v in json.loads(line)] == [tunnelled, OK]
    intake.accept(line)
    enc, plain = stored(intake)
    out = flow_to_json(enc)
    assert out["IP"]["encrypted"] is True
    assert (out["tulle"]["source_spiffe_id"], out["tulle"]["destination_spiffe_id"]) == (
        WEB_ID, ECHO_ID)
    assert plain.ip is not None and not plain.ip.encrypted  # the IP cache keeps them apart
    assert plain.source is None and plain.destination is None
    # A record of an older waypoint (15 fields) has no tunnel.
    assert record_from_json(json.loads(encode_batch([OK[:15]]))[0])[15] is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("bad", "why"), [
    ([1, 2], "array of 17 fields"),
    ([*list(OK)[:14], [["a/b"]]], "policy names must be"),
    ([*list(OK)[:14], [["a/b"], "c/d"]], "policy names must be arrays of strings"),
    ([*list(OK)[:14], [["a/b"], [7]]], "policy names must be arrays of strings"),
    ([*list(OK), None], "array of 17 fields"),
    ([*json.loads(encode_batch([OK]))[0][:15], ["spiffe://cluster.local/ns/a/sa/b"]], "a tunnel must be"),
    ([*json.loads(encode_batch([OK]))[0][:15], ["", "spiffe://cluster.local/ns/a/sa/b"]], "a tunnel must be"),
    ([*json.loads(encode_batch([OK]))[0][:15], "spiffe://cluster.local/ns/a/sa/b"], "a tunnel must be"),
    ([*list(OK)[:13], [1, 2]], "timing marks must be an array of 5 or 8 to 10 integers"),
    ([*list(OK)[:13], [1, 2, 3, 4, 5, 6, 7, "8"]], "timing marks must be an array of 5 or 8"),
    ([*list(OK)[:13], list(range(11))], "timing marks must be an array of 5 or 8 to 10"),
    ([*list(OK)[:13], list(range(6))], "timing marks must be an array of 5 or 8 to 10"),
    ([*list(OK)[:13], [1, 2, 3, 4, 5.0]], "timing marks must be an array of 5 or 8"),
    (["x", *list(OK)[1:]], "field 0 must be an integer"),
    ([*list(OK)[:3], 7, *list(OK)[4:]], "field 3 must be a string"),
    ([*list(OK)[:10], ["10.0.0.1"], *list(OK)[11:]], "client must be [ip, port]"),
    ([*list(OK)[:11], ["10.0.0.1", "80"], OK[12], None], "local must be [ip, port]"),
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


# --- the waypoint never waits for the agent ---------------------------------------------

ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: v1, port: 8080}]
"""


class LoopThread:
    """An event loop in a thread, like the waypoint's: what blocks it shows as timeouts."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def wrap() -> Any:
            return fn()

        return self.run(wrap(), timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def http_get(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        head = conn.recv(64)
    return int(head.split()[1])


def test_an_intake_that_never_reads_never_stalls_the_waypoint(tmp_path: Path) -> None:
    path = tmp_path / "l7.sock"
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.bind(str(path))
    stuck.listen(8)  # never accepts, never reads: the connection's buffers fill and stay full
    forwarder = FlowForwarder(path, max_queued_bytes=64 << 10)
    loop = LoopThread()
    echo = EchoServer(EchoContext(namespace="default", pod="echo-v1"), log=lambda _: None)
    server: WaypointServer | None = None
    try:
        [echo_port] = loop.run(echo.start([0], "127.0.0.1"))
        config = gateway_config(ROUTE, {"default/v1:8080": [("127.0.0.1", echo_port)]},
                                services=("v1",))
        server = WaypointServer(config, flow_sink=forwarder)
        server.metrics.registry.register(FlowLossCollector(server.flows))
        [port] = loop.run(server.start())
        # Fill the connection from the waypoint's loop with small batches (~1 MB), past the
        # socket buffers and the 64 KiB queue. A blocking send would never return.
        loop.call(lambda: [forwarder([OK] * 4) for _ in range(1000)])
        assert forwarder.lost_backlog > 0 and forwarder.lost_unavailable == 0
        before = forwarder.lost_backlog
        assert [http_get(port) for _ in range(5)] == [200] * 5
        deadline = time.monotonic() + 5
        while forwarder.lost_backlog == before and time.monotonic() < deadline:
            time.sleep(0.05)  # the recorder's 0.2 s timer hands the 5 records over
        assert forwarder.lost_backlog > before  # room for them: the oldest batch went
        dropped = server.metrics.registry.get_sample_value(
            "tulle_waypoint_flows_dropped_total", {"reason": "agent_backlog"})
        assert dropped == forwarder.lost_backlog
    finally:
        if server is not None:
            loop.run(server.close())
        loop.run(echo.close())
        loop.call(forwarder.close)
        loop.stop()
        stuck.close()


def test_a_partly_sent_line_survives_and_whole_lines_arrive(tmp_path: Path) -> None:
    """Under back-pressure the intake still reads only whole lines: no batch is cut."""
    path = tmp_path / "l7.sock"
    intake = L7Intake(path, FlowIngest(FlowRing(100_000)), lambda f: f, "node1")
    forwarder = FlowForwarder(path, max_queued_bytes=256 << 10)
    batch = [OK] * 256
    for _ in range(40):  # the intake is not serving yet: its socket buffer fills
        forwarder([*batch])
    sent = 40 * 256 - forwarder.lost
    assert forwarder.lost_backlog > 0
    intake.start()
    try:
        deadline = time.monotonic() + 10
        while len(stored(intake)) < sent and time.monotonic() < deadline:
            forwarder([])  # no loop here: a call drains what the socket now takes
            forwarder._flush()
            time.sleep(0.01)
        assert len(stored(intake)) == sent and intake.rejected == 0
    finally:
        forwarder.close()
        intake.stop()


def test_the_intake_socket_is_private(tmp_path: Path) -> None:
    path = tmp_path / "intake" / "node1.sock"
    intake = L7Intake(path, FlowIngest(FlowRing(10)), lambda f: f, "node1")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        intake.stop()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(PermissionError, match="mode 0755.*0700"):
        L7Intake(shared / "node1.sock", FlowIngest(FlowRing(10)), lambda f: f, "node1")


def test_an_agent_that_goes_away_costs_the_queue_and_the_next_batch_reconnects(
        tmp_path: Path) -> None:
    path = tmp_path / "l7.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    forwarder = FlowForwarder(path)
    try:
        forwarder([OK])
        first, _ = listener.accept()
        assert first.recv(65536).count(b"\n") == 1
        first.close()  # the agent restarts: its end of the connection is gone
        deadline = time.monotonic() + 5
        while forwarder.sock is not None and time.monotonic() < deadline:
            forwarder([OK, DENIED])  # EPIPE/ECONNRESET once the kernel notices
        assert forwarder.sock is None and forwarder.lost_unavailable >= 2
        assert forwarder.lost_backlog == 0
        forwarder([DENIED])  # reconnects
        second, _ = listener.accept()
        second.settimeout(5)
        line = second.recv(65536)
        assert line.endswith(b"\n") and [record_from_json(v) for v in json.loads(line)] == [DENIED]
        second.close()
    finally:
        forwarder.close()
        listener.close()


# --- the timing marks' binary column ---------------------------------------------------------

T0 = 5_000_000_000  # the request's start on the waypoint's monotonic clock
RAW_OK = (40, T0, T0 + 300_000, 0, 0, T0 + 900_000, T0 + 950_000, T0 + 960_000, 60, 0, 0)
TIMED: L7Record = (*OK[:13], True, *OK[14:])  # type: ignore[assignment]
# The same request as the waypoint sends it now: LEAN marks in the column, and the EXTRA
# ones in the record (its response body came after its head) ...
LEAN_OK = (40, T0, T0 + 300_000, T0 + 900_000, 60)
EXTRA_OK = (0, 0, T0 + 950_000, T0 + 960_000, 0, 0)
WITH_EXTRA: L7Record = (*OK[:13], EXTRA_OK, *OK[14:])  # type: ignore[assignment]
# ... or, for a plain request (its end read with its head), none: True
PLAIN_OK: L7Record = (*OK[:13], (40, 300_000, 0, 0, 900_000, 0, 900_000, 60), *OK[14:])


def _column(*marks: tuple[int, ...]) -> bytes:
    """An older waypoint's column (head key "marks"): RAW integers per timed record."""
    return pack_marks(marks, RAW)


def _old_batch(records: list[L7Record], column: bytes) -> bytes:
    """A batch as waypoints wrote it before the LEAN column."""
    return encode_batch(records, column).replace(b'{"split":', b'{"marks":', 1)


def test_an_older_waypoints_raw_column_still_splits_as_before(tmp_path: Path) -> None:
    column = _column(RAW_OK, RAW_OK)
    payload = _old_batch([TIMED, DENIED, TIMED], column)
    line, _, rest = payload.partition(b"\n")
    value = json.loads(line)
    assert [r[13] for r in value["records"]] == [True, None, True]  # no mark in the JSON text
    assert value["marks"] == len(column) == 2 * RAW * 8 and rest == column
    # through the socket: the column (any bytes, newlines too) follows its line
    intake = L7Intake(tmp_path / "l7.sock", FlowIngest(FlowRing(100)), lambda f: f,
                      "node1").start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(tmp_path / "l7.sock"))
            conn.sendall(payload + encode_batch([DENIED]))
            deadline = time.monotonic() + 5
            while len(stored(intake)) < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        intake.stop()
    assert b"\n" in column  # 0x0a bytes inside the column end no line
    first, denied, second, after = stored(intake)
    assert after.tulle is not None and after.tulle.request is None
    want = L7FlowBuilder("node1").flow(OK)  # the same marks, relative, inline
    assert first.tulle is not None and want.tulle is not None
    assert first.tulle.request == second.tulle.request == want.tulle.request
    assert first.tulle.request.backend_ns == 600_000 - 60_000 + 10_000
    assert denied.tulle is not None and denied.tulle.request is None
    assert intake.rejected == 0


@pytest.mark.parametrize(("records", "marks", "kept", "why"), [
    # not the announced size, or not whole 64-bit integers: the column is unusable, the
    # timed records with it; the untimed one still counts
    ([TIMED, DENIED], (RAW * 8, b"\0" * 12), 1, "must be the 88 bytes .* got 12"),
    ([TIMED, DENIED], (12, b"\0" * 12), 1, "must be the 12 bytes .*64-bit"),
    ([TIMED, DENIED], ("88", b""), 1, "must be the '88' bytes"),
    # marks neither inline nor in the column: that record only
    ([(*OK[:13], 7, None), DENIED, TIMED], _column(RAW_OK), 2, "timing marks must be an array"),
    # fewer marks than the records claim: the record past the end goes
    ([TIMED, TIMED], _column(RAW_OK), 1, r"end before a record's 11"),
    # more than they claim: named, no record lost
    ([TIMED, DENIED], _column(RAW_OK, RAW_OK), 2, "22 integers|11 integers no record claims"),
])
def test_a_malformed_marks_column_is_named_and_loses_nothing_else(
        intake: L7Intake, caplog: Any, records: list[Any], marks: Any, kept: int,
        why: str) -> None:
    size, data = (len(marks), marks) if isinstance(marks, bytes) else marks
    intake.accept(json.dumps({"records": records, "marks": size}).encode(), data)
    assert len(stored(intake)) == kept and intake.rejected >= 1
    assert re.search(why, caplog.text), caplog.text


def test_a_batch_object_without_records_is_named(intake: L7Intake, caplog: Any) -> None:
    intake.accept(b'{"records": 3, "marks": 0}\n')
    assert intake.rejected == 1 and "records must be an array" in caplog.text


class RecordingSink:
    raw_records = True

    def __init__(self) -> None:
        self.batches: list[tuple[list[L7Record], list[int]]] = []

    def __call__(self, records: Any, marks: bytes) -> None:
        self.batches.append((list(records), list(decode_column(marks, len(marks)))))


def test_the_recorder_keeps_each_records_marks_with_it_when_it_drops_the_oldest() -> None:
    sink = RecordingSink()
    recorder = FlowRecorder(sink, batch=10, max_pending=2)
    later = tuple(v + 1 if i == 0 else v for i, v in enumerate(LEAN_OK))  # another RTT

    async def record() -> None:  # the recorder's flush timer needs a loop
        recorder.record(WITH_EXTRA, pack_lean(*LEAN_OK))
        recorder.record(DENIED)
        recorder.record(TIMED, pack_lean(*later))
        recorder.flush()

    asyncio.run(record())
    [(records, marks)] = sink.batches
    assert records == [DENIED, TIMED] and marks == list(later) and recorder.lost == 1


def test_a_flow_sink_in_process_gets_the_split_from_the_column() -> None:
    flows: list[Flow] = []
    recorder = FlowRecorder(flows.extend, node_name="node1", batch=10)

    async def record() -> None:
        recorder.record(WITH_EXTRA, pack_lean(*LEAN_OK))
        recorder.record(DENIED)
        recorder.record(TIMED, pack_lean(*LEAN_OK))
        recorder.flush()

    asyncio.run(record())
    want = [L7FlowBuilder("node1").flow(r).tulle for r in (OK, DENIED, PLAIN_OK)]
    assert [f.tulle.request for f in flows if f.tulle] == [w.request for w in want if w]


def test_the_lean_column_and_the_extra_marks_split_as_the_inline_marks(
        intake: L7Intake) -> None:
    """The waypoint's batch: LEAN integers per timed record in the column (head key
    "split"), the EXTRA marks in the record only when the request has them."""
    column = pack_marks([LEAN_OK, LEAN_OK])
    payload = encode_batch([WITH_EXTRA, DENIED, TIMED], column)
    line, _, rest = payload.partition(b"\n")
    value = json.loads(line)
    assert value["split"] == len(column) == 2 * LEAN * 8 and rest == column
    assert [r[13] for r in value["records"]] == [list(EXTRA_OK), None, True]
    intake.accept(line, rest)
    builder = L7FlowBuilder("node1")
    with_body, denied, plain = stored(intake)
    assert intake.rejected == 0
    assert with_body.tulle.request == builder.flow(OK).tulle.request  # type: ignore[union-attr]
    assert plain.tulle.request == builder.flow(PLAIN_OK).tulle.request  # type: ignore[union-attr]
    assert plain.tulle.request.backend_ns == 600_000 - 60_000  # no body time
    assert denied.tulle is not None and denied.tulle.request is None


@pytest.mark.parametrize(("records", "column", "kept", "why"), [
    # field 13 neither true nor 6 integers: that record only
    ([(*OK[:13], [1, 2, 3], None), DENIED, TIMED], [LEAN_OK, LEAN_OK], 2,
     "field 13 must be true or an array of 6 integers"),
    ([(*OK[:13], [0, 0, 0, "x", 0, 0], None), TIMED], [LEAN_OK, LEAN_OK], 1,
     "field 13 must be true"),
    # fewer LEAN marks than the records claim: the record past the end goes
    ([TIMED, WITH_EXTRA], [LEAN_OK], 1, r"end before a record's 5"),
    # more than they claim: named, no record lost
    ([TIMED, DENIED], [LEAN_OK, LEAN_OK], 2, "5 integers no record claims"),
])
def test_a_malformed_lean_batch_is_named_and_loses_nothing_else(
        intake: L7Intake, caplog: Any, records: list[Any], column: list[tuple[int, ...]],
        kept: int, why: str) -> None:
    payload = encode_batch(records, pack_marks(column))
    line, _, rest = payload.partition(b"\n")
    intake.accept(line, rest)
    assert len(stored(intake)) == kept and intake.rejected >= 1
    assert re.search(why, caplog.text), caplog.text


def test_a_waypoints_requests_reach_the_agent_with_their_split(tmp_path: Path) -> None:
    """End to end without root: the waypoint's forwarder (marks column after each batch
    line) into the agent's intake, whose flows carry a split that adds up."""
    path = tmp_path / "l7.sock"
    intake = L7Intake(path, FlowIngest(FlowRing(100)), lambda f: f, "node1").start()
    forwarder = FlowForwarder(path)
    loop = LoopThread()
    echo = EchoServer(EchoContext(namespace="default", pod="echo-v1"), log=lambda _: None)
    server: WaypointServer | None = None
    try:
        [echo_port] = loop.run(echo.start([0], "127.0.0.1"))
        config = gateway_config(ROUTE, {"default/v1:8080": [("127.0.0.1", echo_port)]},
                                services=("v1",))
        server = WaypointServer(config, flow_sink=forwarder)
        [port] = loop.run(server.start())
        assert [http_get(port) for _ in range(3)] == [200] * 3
        deadline = time.monotonic() + 5
        while len(stored(intake)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # the recorder's 0.2 s timer sends the batch
        flows = stored(intake)
        assert len(flows) == 3 and intake.rejected == 0
        for f in flows:
            assert f.tulle is not None
            split = f.tulle.request
            assert split is not None and f.l7 is not None
            assert split.total_ns >= f.l7.latency_ns > 0
            assert sum(getattr(split, p) for p in PARTS) == split.total_ns
            assert split.upstream_network_ns + split.backend_ns > 0  # it went upstream
    finally:
        if server is not None:
            loop.run(server.close())
        loop.run(echo.close())
        loop.call(forwarder.close)
        loop.stop()
        intake.stop()


def test_a_record_with_bad_extra_marks_keeps_its_slot_in_the_column(intake: L7Intake) -> None:
    """The records after it still get their own marks, not their neighbour's."""
    other = (77, *LEAN_OK[1:])  # another client RTT: 77 µs
    payload = encode_batch([(*OK[:13], [1, 2], None), TIMED], pack_marks([LEAN_OK, other]))
    line, _, rest = payload.partition(b"\n")
    intake.accept(line, rest)
    [flow] = stored(intake)
    assert intake.rejected == 1
    assert flow.tulle.request.client_network_ns == 77_000  # type: ignore[union-attr]


def test_a_timed_record_with_a_bad_latency_is_named_and_keeps_its_slot_in_the_column(
        intake: L7Intake, caplog: Any) -> None:
    """The column's records are split as they are read (before the record's own checks
    would reach its latency): a latency that is not an integer is still named as field 1,
    and the next record still gets its own marks."""
    other = (77, *LEAN_OK[1:])
    payload = encode_batch([(OK[0], "2.5ms", *OK[2:13], True, None), TIMED],
                           pack_marks([LEAN_OK, other]))
    line, _, rest = payload.partition(b"\n")
    intake.accept(line, rest)
    [flow] = stored(intake)
    assert intake.rejected == 1 and "field 1 must be an integer" in caplog.text
    assert flow.tulle.request.client_network_ns == 77_000  # type: ignore[union-attr]


def test_waypoint_flows_get_the_pods_spiffe_ids_from_the_agents_index(tmp_path: Path) -> None:
    """The agent enriches the waypoint's L7 flows from its own index, as the datapath's."""
    from agent.flows.enrich import EndpointIndex, enrich

    index = EndpointIndex.build(
        pods=[{"ip": "10.244.1.2", "namespace": "shop", "name": "client-0",
               "service_account": "client"},
              {"ip": "10.244.1.254", "namespace": "shop", "name": "echo-0"}],
        trust_domain="td.example")
    intake = L7Intake(tmp_path / "l7.sock", FlowIngest(FlowRing(10)),
                      lambda f: enrich(f, index, "node1"), "node1")
    intake.accept(encode_batch([OK]))
    [flow] = stored(intake)
    tulle = flow_to_json(flow)["tulle"]
    assert tulle["source_spiffe_id"] == "spiffe://td.example/ns/shop/sa/client"
    assert tulle["destination_spiffe_id"] == "spiffe://td.example/ns/shop/sa/default"
