"""Issue 9, item 7 (HTTP/1.1): slow clients and slow bodies time out, pool waits have a
deadline, write buffers toward a client that does not read have a ceiling, and the
waypoint raises its open-file limit. Real sockets over loopback, plus playbooks on the
client connection for the timers (the sweeper's ``check`` called with chosen times)."""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from agent.flows.flow import Flow, Verdict
from l7proxy.config import Limits
from l7proxy.h1 import Http1Connection
from l7proxy.http.parser import RequestHead
from l7proxy.pool import Pool
from l7proxy.server import WaypointServer, raise_fd_limit
from l7proxy.testing import RawBackend, gateway_config, read_response
from l7proxy.upstream import Connector, UpstreamFailure
from tests.unit.l7proxy.h1lab import OK, ROUTE, Answer, Wire, ok, raw_waypoint, run


class Lab:
    def __init__(self, server: WaypointServer, backend: RawBackend, flows: list[Flow]) -> None:
        self.server, self.backend, self.flows = server, backend, flows
        self.port = server.ports[0]

    def dropped(self) -> list[tuple[int, str]]:
        out = []
        for flow in self.flows:
            if flow.verdict is Verdict.DROPPED:
                assert flow.l7 is not None and flow.l7.http is not None
                out.append((flow.l7.http.code, flow.drop_reason_desc))
        return out


@asynccontextmanager
async def waypoint(limits: Limits, answer: Answer = ok) -> AsyncIterator[Lab]:
    flows: list[Flow] = []
    async with raw_waypoint(answer, limits=limits, flow_sink=flows.extend) as (server, backend):
        yield Lab(server, backend, flows)


# --- slow request bodies -------------------------------------------------------------------


def test_stalled_body_gets_408_counted_and_a_flow() -> None:
    async def test() -> None:
        async with waypoint(Limits(body_idle_timeout=0.3)) as lab:
            reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
            writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            status, headers, body = await asyncio.wait_for(read_response(reader), 5)
            assert (status, headers["connection"]) == (408, "close")
            assert body == b"request body stalled\n"
            assert await reader.read() == b""  # and closed
            writer.close()
            lab.server.flows.flush()
            assert lab.dropped() == [(408, "REQUEST_TIMEOUT")]
            assert lab.server.metrics.closes == {"REQUEST_BODY_TIMEOUT": 1}
            assert lab.server.metrics.requests("default/r", "default/raw:8080", 408) == 1
            assert lab.backend.received == []  # never completed, never answered

    run(test)


def test_trickled_body_hits_the_overall_body_timeout() -> None:
    async def test() -> None:
        async with waypoint(Limits(body_idle_timeout=5, body_timeout=0.5)) as lab:
            reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
            writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n")
            answer = asyncio.ensure_future(read_response(reader))
            for _ in range(40):  # one byte every 50 ms: never idle, never done
                if answer.done():
                    break
                writer.write(b"x")
                await asyncio.sleep(0.05)
            status, _, body = await asyncio.wait_for(answer, 5)
            writer.close()
            assert (status, body) == (408, b"request body not received in time\n")
            lab.server.flows.flush()
            assert lab.dropped() == [(408, "REQUEST_TIMEOUT")]

    run(test)


def test_body_timeout_after_the_response_started_closes_the_connection() -> None:
    async def test() -> None:
        head_only = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"

        class Early(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                if data.startswith(b"POST"):
                    self.transport.write(head_only)  # answers at once, body still owed

        loop = asyncio.get_running_loop()
        early = await loop.create_server(Early, "127.0.0.1", 0)
        config = gateway_config(
            ROUTE,
            {"default/raw:8080": [("127.0.0.1", early.sockets[0].getsockname()[1])]},
            services=("raw",),
            limits=Limits(body_idle_timeout=0.3),
        )
        flows: list[Flow] = []
        server = WaypointServer(config, flow_sink=flows.extend, enable_h2=False)
        [port] = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nxx")
            data = await asyncio.wait_for(_read_until_cut(reader), 5)
            writer.close()
            assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"408" not in data
            server.flows.flush()
            assert [(f.l7.http.code, f.drop_reason_desc) for f in flows if f.l7 and f.l7.http] == [
                (408, "REQUEST_TIMEOUT")
            ]
        finally:
            await server.close()
            early.close()

    run(test)


async def _read_until_cut(reader: asyncio.StreamReader) -> bytes:
    """Everything until the waypoint closes or resets the connection."""
    data = b""
    try:
        while piece := await reader.read(65536):
            data += piece
    except ConnectionResetError:
        pass
    return data


async def _client(limits: Limits) -> tuple[Http1Connection, Wire]:
    config = gateway_config(ROUTE, {"default/raw:8080": [("127.0.0.1", 1)]}, limits=limits)
    server = WaypointServer(config, enable_h2=False)
    server._loop = asyncio.get_running_loop()
    conn = Http1Connection(server, server.config.listeners[0].parent)
    wire = Wire()
    conn.connection_made(wire)
    return conn, wire


def test_playbook_time_the_waypoint_paused_reading_is_not_a_stall() -> None:
    async def main() -> None:
        conn, wire = await _client(Limits(body_idle_timeout=5, body_timeout=100))
        conn.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        start = conn.body_read_at
        conn._pause()  # the backend is slow: the waypoint stopped reading, not the client
        conn.check(start + 50, header_timeout=10, idle_timeout=60)
        assert not wire.closed
        conn._resume()  # reading again: the idle clock restarts now
        conn.check(conn.body_read_at + 4, header_timeout=10, idle_timeout=60)
        assert not wire.closed
        conn.check(conn.body_read_at + 6, header_timeout=10, idle_timeout=60)
        assert wire.closed

    asyncio.run(main())


# --- clients that do not read --------------------------------------------------------------


def test_playbook_write_buffer_over_the_ceiling_closes_the_client() -> None:
    async def main() -> None:
        conn, wire = await _client(Limits(max_write_buffer=1000))
        conn.head(200, b"OK", [], None, None)
        conn.data(b"a" * 10)
        assert not wire.closed  # under the high-water mark: not even looked at
        conn.pause_writing()
        wire.buffered = 900
        conn.data(b"b" * 10)
        assert not wire.closed
        wire.buffered = 1001
        conn.data(b"c" * 10)
        assert wire.closed and conn.server.metrics.closes == {"CLIENT_WRITE_BUFFER_FULL": 1}

    asyncio.run(main())


def test_client_that_stops_reading_is_closed_after_the_write_timeout() -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (32 << 20) + b"z" * (32 << 20)

    async def test() -> None:
        async with waypoint(Limits(write_timeout=0.3), lambda h, b: big) as lab:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", lab.port))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            for _ in range(100):
                if lab.server.metrics.closes:
                    break
                await asyncio.sleep(0.05)
            assert lab.server.metrics.closes == {"CLIENT_WRITE_TIMEOUT": 1}
            received = 0
            try:
                while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
                    received += len(chunk)
            except ConnectionResetError:
                pass
            writer.close()
            assert received < len(big)  # cut off, not buffered whole for the client
            lab.server.flows.flush()
            assert lab.dropped() == [(200, "CLIENT_WRITE_TIMEOUT")]

    run(test)


# --- pool waits ----------------------------------------------------------------------------


def test_pool_wait_gives_up_with_a_clear_503() -> None:
    async def slow(head: RequestHead, body: bytes) -> bytes:
        await asyncio.sleep(1.5 if head.target == "/slow" else 0)
        return OK

    async def test() -> None:
        limits = Limits(max_upstream_per_endpoint=1, pool_wait_timeout=0.2)
        async with waypoint(limits, slow) as lab:
            first = asyncio.ensure_future(_get(lab.port, "/slow"))
            while not lab.backend.received:  # the first holds the only connection
                await asyncio.sleep(0.01)
            status, body = await asyncio.wait_for(_get(lab.port, "/fast"), 1.0)
            assert status == 503
            assert body.startswith(b"no connection to 127.0.0.1:") and b"free within 0.2 s" in body
            assert (await first)[0] == 200
            lab.server.flows.flush()
            assert lab.dropped() == [(503, "UPSTREAM_POOL_EXHAUSTED")]
            assert lab.server.proxy.pool.stats.wait_timeouts == 1

    run(test)


async def _get(port: int, path: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    status, _, body = await read_response(reader)
    writer.close()
    return status, body


def test_a_woken_waiter_that_leaves_passes_its_turn_on() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        address = ("127.0.0.1", server.sockets[0].getsockname()[1])
        pool = Pool(Connector(), max_per_endpoint=1, wait_timeout=5)
        held = await pool.acquire(address)
        leaving = asyncio.ensure_future(pool.acquire(address))
        staying = asyncio.ensure_future(pool.acquire(address))
        await asyncio.sleep(0.01)
        held.done = loop.create_future()
        held.done.set_result(None)
        pool.release(held)  # wakes ``leaving``...
        leaving.cancel()  # ...which goes away before it runs
        conn = await asyncio.wait_for(staying, 2)
        assert conn is held
        with pytest.raises(asyncio.CancelledError):
            await leaving
        fast = Pool(Connector(), max_per_endpoint=1, wait_timeout=0.05)
        await fast.acquire(address)
        with pytest.raises(UpstreamFailure) as failure:
            await fast.acquire(address)
        assert not failure.value.sent and failure.value.drop == "UPSTREAM_POOL_EXHAUSTED"
        server.close()

    asyncio.run(main())


# --- the open-file limit -------------------------------------------------------------------


def test_start_raises_the_open_file_limit_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("hard open-file limit too low to lower the soft one")
    lowered = 256

    async def test() -> None:
        async with waypoint(Limits()):
            now = resource.getrlimit(resource.RLIMIT_NOFILE)
            assert now[0] == (hard if hard != resource.RLIM_INFINITY else 2 * 10_000 + 256)

    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        run(test)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_open_file_limit_that_cannot_serve_the_cap_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[tuple[int, int]] = []

    def refuse(which: int, limits: tuple[int, int]) -> None:
        calls.append(limits)
        raise OSError(1, "Operation not permitted")

    with caplog.at_level(logging.WARNING, "tulle.waypoint"):
        assert raise_fd_limit(1000, get=lambda _: (512, 4096), set_=refuse) == 512
    assert calls == [(4096, 4096)]
    text = caplog.text
    assert "cannot raise the open-file limit from 512 to 4096" in text
    assert "1000 connections need about 2256" in text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "tulle.waypoint"):
        assert raise_fd_limit(10, get=lambda _: (512, 4096), set_=lambda *_: None) == 4096
    assert caplog.text == ""
