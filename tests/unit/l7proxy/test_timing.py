"""Where a request's time went, measured by the in-process waypoint against loopback
backends (real sockets: the kernel's RTTs are real): the echo's ``?delay=`` lands in the
backend part, a new upstream connection in the connect part, a local answer in the proxy
part, and the parts add up to the total."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from typing import Any

import pytest

from agent.flows.flow import Flow, RequestSplit
from agent.flows.reqsplit import EXTRA, LEAN, PARTS
from l7proxy import timing
from l7proxy.exchange import Exchange
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response
from tests.unit.l7proxy.test_server import ROUTES, Lab, run

DELAY_NS = 300_000_000  # the backend's own time, from ?delay=300ms


def _splits(lab: Lab) -> list[tuple[Flow, RequestSplit]]:
    lab.server.flows.flush()
    out = []
    for f in lab.flows:
        assert f.tulle is not None and f.tulle.request is not None, f
        out.append((f, f.tulle.request))
    return out


def _adds_up(f: Flow, r: RequestSplit) -> None:
    assert sum(getattr(r, p) for p in PARTS) == r.total_ns
    # the total is the client's RTT (part of client_network_ns) plus the span
    assert f.l7 is not None and 0 <= r.total_ns - f.l7.latency_ns <= r.client_network_ns
    assert all(getattr(r, p) >= 0 for p in PARTS)


def test_the_backends_delay_is_backend_time_and_nothing_else() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/hdr?delay=300ms")
        assert status == 200
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.backend_ns >= DELAY_NS - 1_000_000  # asyncio's sleep may wake ~1 ms early
        for part in ("client_network_ns", "proxy_ns", "upstream_connect_ns",
                     "upstream_network_ns"):
            assert getattr(r, part) < DELAY_NS // 3, (part, r)
        assert r.client_network_ns > 0 and r.upstream_network_ns > 0  # loopback TCP has RTTs

    run(body)


def test_a_new_upstream_connection_is_connect_time_and_a_pooled_one_is_not() -> None:
    async def body(lab: Lab) -> None:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
            writer.write(b"GET /hdr HTTP/1.1\r\nHost: example.com\r\n\r\n")
            await reader.readuntil(b"}")
            writer.close()
        # on the wire to the agent: the batch's column holds LEAN clock readings per
        # request; the new connection's record carries its EXTRA marks (a connect time),
        # the pooled one's only says it is timed (True: no connect, the response's end
        # read with its head)
        recorder = lab.server.flows
        new_extra, pooled_extra = (r[13] for r in recorder._pending)
        assert pooled_extra is True, pooled_extra
        assert isinstance(new_extra, tuple) and len(new_extra) == EXTRA
        assert new_extra[0] > 0 and new_extra[1] == 0, new_extra  # connect, none late
        assert [len(m) for m in recorder._marks] == [LEAN * 8, LEAN * 8]  # int64s
        (f1, first), (f2, second) = _splits(lab)
        _adds_up(f1, first)
        _adds_up(f2, second)
        assert first.upstream_connect_ns > 0
        assert second.upstream_connect_ns == 0  # the pool's connection

    run(body)


def test_a_local_answer_is_all_waypoint_time() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/nothing/here")
        assert status == 404
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert f.l7 is not None and r.proxy_ns == f.l7.latency_ns
        assert r.upstream_connect_ns == r.upstream_network_ns == r.backend_ns == 0

    run(body)


def test_a_refused_connect_is_connect_time_with_no_upstream_exchange() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/down")
        assert status == 503
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.upstream_connect_ns > 0
        assert r.upstream_network_ns == r.backend_ns == 0

    run(body)


def test_retries_count_as_backend_time_not_waypoint_time() -> None:
    async def body(lab: Lab) -> None:
        # 503 twice (each after 100 ms), then 200: the tries and the backoff are upstream
        status, _, _ = await lab.get("/retry?uuid=t1&succeedAfter=2&delayRetry=100ms")
        assert status == 200
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.backend_ns >= 200_000_000 - 2_000_000
        assert r.proxy_ns < 100_000_000

    run(body)


def test_an_h2c_backend_has_the_split_too() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.request(
            b"POST /grpc.Echo/Say HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi"
        )
        assert status == 200
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.upstream_connect_ns > 0 and r.upstream_network_ns > 0

    run(body)


# --- the switch: the split is part of tracing ------------------------------------------------

def test_with_the_split_off_requests_take_no_marks_and_no_rtt_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[object] = []

    def counted(sock: object) -> int:
        reads.append(sock)
        return 7

    monkeypatch.setattr(timing, "rtt_us", counted)
    exchanges: list[Exchange] = []
    real_init = Exchange.__init__

    def keep(self: Exchange, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        exchanges.append(self)

    monkeypatch.setattr(Exchange, "__init__", keep)

    async def body(lab: Lab) -> None:
        timing.SPLIT.on = False  # as SIGUSR1 does in the node's waypoint
        try:
            for path in ("/hdr?a=1", "/hdr?a=2", "/nothing/here"):
                await lab.get(path)
            await lab.request(b"POST /grpc.Echo/Say HTTP/1.1\r\nHost: example.com\r\n"
                              b"Content-Length: 2\r\n\r\nhi")  # and over h2c
        finally:
            timing.SPLIT.on = True
        lab.server.flows.flush()
        assert len(lab.flows) == 4
        for f in lab.flows:  # the flows: latency as always, no split
            assert f.tulle is not None and f.tulle.request is None, f
            assert f.l7 is not None and f.l7.latency_ns > 0
        assert reads == []  # no TCP_INFO
        marks = ("t_sent", "t_connect", "t_connect_late", "t_first", "t_head_out", "t_last",
                 "upstream_rtt_us", "t_body_end", "t_stall", "plain")
        assert exchanges and all(  # not even set: nothing stored or read per request
            not ex.timed and not any(hasattr(ex, m) for m in marks) for ex in exchanges)
        # switched on again: the next request has its split (and reads the RTTs)
        await lab.get("/hdr?a=3")
        lab.server.flows.flush()
        assert lab.flows[-1].tulle is not None and lab.flows[-1].tulle.request is not None
        assert reads

    run(body)


def test_the_config_sets_the_switch() -> None:
    config = gateway_config(ROUTES, {}, services=("v1",))
    WaypointServer(dataclasses.replace(config, request_split=False))
    assert timing.SPLIT.on is False
    WaypointServer(config)
    assert timing.SPLIT.on is True


# --- the client's own time is not the backend's ---------------------------------------------

LATE_NS = 200_000_000


def test_a_request_body_the_client_sends_late_is_client_time_not_backend_time() -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        try:
            writer.write(b"POST /hdr?late HTTP/1.1\r\nHost: example.com\r\n"
                         b"Content-Length: 5\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(LATE_NS / 1e9)  # the echo waits for the body to answer
            writer.write(b"hello")
            await asyncio.wait_for(read_response(reader), 10)
        finally:
            writer.close()
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert r.client_network_ns >= LATE_NS - 1_000_000, r
        assert r.backend_ns < LATE_NS // 4, r

    run(body)


RESPONSE_BYTES = 1_000_000  # the raw backend answers "got:" + the request body


def test_a_response_the_client_reads_slowly_is_client_time_not_backend_time() -> None:
    async def body(lab: Lab) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        sock.connect(("127.0.0.1", lab.port))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        while not lab.server.connections:
            await asyncio.sleep(0.001)
        # A response larger than what the buffers on its way hold (loopback's would grow
        # to 4 MB): the waypoint's socket toward the client keeps 32 KB.
        [conn] = lab.server.connections
        assert conn.transport is not None
        conn.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        try:
            await loop.sock_sendall(sock, b"POST /raw/slow HTTP/1.1\r\nHost: example.com\r\n"
                                    b"Content-Length: %d\r\n\r\n" % RESPONSE_BYTES
                                    + b"x" * RESPONSE_BYTES)
            started = time.monotonic_ns()
            got = 0
            while got < RESPONSE_BYTES:  # ~16 KB per 5 ms: ~300 ms for the response
                data = await loop.sock_recv(sock, 16384)
                assert data, "the waypoint closed the connection"
                got += len(data)
                await asyncio.sleep(0.005)
            reading = time.monotonic_ns() - started
        finally:
            sock.close()
        [(f, r)] = _splits(lab)
        _adds_up(f, r)
        assert reading >= 200_000_000
        # Most of the reading time fell inside the span (the backend was paused behind
        # the client): it is the client's, and at most a quarter of it is the backend's.
        assert r.client_network_ns >= reading // 2, (reading, r)
        assert r.backend_ns < reading // 4, (reading, r)

    run(body)


def test_the_node_waypoint_switches_the_split_with_the_tracing_signals(
        caplog: pytest.LogCaptureFixture) -> None:
    from l7proxy.node import switch_split

    caplog.set_level("INFO", logger="tulle.waypoint")
    try:
        switch_split(False)  # SIGUSR1
        switch_split(False)  # no change: no line (bench/trace counts the lines)
        assert timing.SPLIT.on is False
        switch_split(True)  # SIGUSR2
        assert timing.SPLIT.on is True
    finally:
        timing.SPLIT.on = True
    assert [r.getMessage() for r in caplog.records] == ["request split paused",
                                                        "request split resumed"]


def test_a_response_read_with_its_head_takes_no_clock_reading_when_it_goes_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its end came with its head: when the head went out does not change the split (no
    body time), so the waypoint's forwarding takes one clock reading (the request going
    upstream), not two, and the flow carries no EXTRA marks (True)."""
    from l7proxy import forward

    reads: list[int] = []

    def counted() -> int:
        reads.append(1)
        return time.monotonic_ns()

    monkeypatch.setattr(forward, "now", counted)

    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        try:
            for _ in range(3):  # one connection: the upstream one is pooled after the first
                writer.write(b"GET /hdr HTTP/1.1\r\nHost: example.com\r\n\r\n")
                await asyncio.wait_for(read_response(reader), 10)
        finally:
            writer.close()
        assert len(reads) == 3, reads  # t_sent only, per request
        first, *pooled = (r[13] for r in lab.server.flows._pending)
        assert pooled == [True, True] and isinstance(first, tuple)  # first: a connect
        for f, r in _splits(lab):
            _adds_up(f, r)
            assert r.backend_ns > 0

    run(body)
