"""Issue 9, item 1: a pooled upstream connection is never handed to the next request while
the backend is still owed part of an earlier request. A backend may answer (any status)
before it has read the body; the connection goes back to the pool only when the request
was sent whole and the response is complete.

Real sockets (a backend that answers early, then a second client on the same pool), and
a playbook that replays the same conversation through fake transports."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from l7proxy.h1 import Http1Connection
from l7proxy.h1up import Http1Upstream
from l7proxy.http.parser import END, RequestHead, RequestParser
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response
from l7proxy.upstream import Connector, P
from tests.unit.l7proxy.h1lab import Wire, raw_route

ROUTE = raw_route("early")

class Seen:
    """What the backend read: each request head's target with the body read for it."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, str, bytearray]] = []


class EarlyBackend(asyncio.Protocol):
    """Answers each request as soon as its head is read (before the body), then keeps
    reading. With ``duplex``, the answer's body is only finished once the whole request
    body has been read (a backend streaming while it reads)."""

    count = 0

    def __init__(self, seen: Seen, status: int, duplex: bool) -> None:
        self.seen, self.status, self.duplex = seen, status, duplex
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None
        EarlyBackend.count += 1
        self.id = EarlyBackend.count

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for event in self.parser.feed(data):
            if isinstance(event, RequestHead):
                self.seen.requests.append((self.id, event.target, bytearray()))
                if self.duplex:
                    self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                elif self.status == 204:
                    self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                else:
                    self.transport.write(
                        b"HTTP/1.1 %d Early\r\nContent-Length: 5\r\n\r\nearly" % self.status
                    )
            elif isinstance(event, bytes):
                self.seen.requests[-1][2].extend(event)
            elif event is END and self.duplex:
                size = len(self.seen.requests[-1][2])
                body = b"read %d" % size
                self.transport.write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body))


async def _serve_early(status: int, duplex: bool = False) -> tuple[Any, Seen, WaypointServer]:
    loop = asyncio.get_running_loop()
    seen = Seen()
    backend = await loop.create_server(lambda: EarlyBackend(seen, status, duplex), "127.0.0.1", 0)
    port = backend.sockets[0].getsockname()[1]
    config = gateway_config(
        ROUTE, {"default/early:8080": [("127.0.0.1", port)]}, services=("early",)
    )
    server = WaypointServer(config, enable_h2=False)
    await server.start()
    return backend, seen, server


async def _request(port: int, raw: bytes, *, then: bytes = b"") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        if then:
            writer.write(then)  # the rest of the body, after the answer
            await asyncio.sleep(0.05)
        return status, body
    finally:
        writer.close()


@pytest.mark.parametrize("status", [200, 204, 302, 413])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_early_answer_never_lets_the_next_request_become_the_rest_of_the_body(
    status: int, framing: str
) -> None:
    async def main() -> None:
        backend, seen, server = await _serve_early(status)
        try:
            if framing == "length":
                first = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n"
                first += b"x" * 10
            else:
                first = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                first += b"a\r\n" + b"x" * 10 + b"\r\n"
            code, _ = await _request(server.ports[0], first, then=b"y" * 20)
            assert code == status
            code, body = await _request(server.ports[0], b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
            assert code == status  # answered: the backend read it as a request
            [(conn1, target1, body1), (conn2, target2, body2)] = seen.requests
            assert (target1, target2) == ("/upload", "/second")
            assert b"GET /second" not in body1 and body2 == b""
            assert conn1 != conn2  # the owed connection was closed, not pooled
            assert server.proxy.pool.stats.reused == 0
        finally:
            await server.close()
            backend.close()

    asyncio.run(main())


def test_body_keeps_flowing_to_a_backend_that_answers_while_reading() -> None:
    """A full-duplex backend: head first, body read to the end, then the answer ends.
    The body must keep going upstream after the response head, and the connection is
    pooled afterwards because the request was sent whole."""

    async def main() -> None:
        backend, seen, server = await _serve_early(200, duplex=True)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.ports[0])
            writer.write(b"POST /duplex HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n")
            writer.write(b"x" * 10)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            writer.write(b"x" * 20)  # the rest, after the response head arrived
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)).strip(), 16)
            assert (await reader.readexactly(size)) == b"read 30"
            writer.write(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
            status, _, body = await asyncio.wait_for(read_response(reader), 5)
            assert (status, body) == (200, b"read 0")
            writer.close()
            assert [r[1] for r in seen.requests] == ["/duplex", "/next"]
            assert seen.requests[0][0] == seen.requests[1][0]  # the same, pooled connection
            assert server.proxy.pool.stats.reused == 1
        finally:
            await server.close()
            backend.close()

    asyncio.run(main())


# --- the same conversation as a playbook (no sockets) ---------------------------------------


class Backends(Connector):
    """Opens upstream connections over ``Wire``s: the test plays the backend."""

    def __init__(self) -> None:
        super().__init__()
        self.conns: list[tuple[Http1Upstream, Wire]] = []

    async def open(self, address: tuple[str, int], factory: Any) -> tuple[asyncio.BaseTransport, P]:
        protocol = factory()
        wire = Wire(strict=False)
        protocol.connection_made(wire)
        self.conns.append((protocol, wire))
        return wire, cast(P, protocol)


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def _playbook_server() -> tuple[WaypointServer, Backends]:
    backends = Backends()
    config = gateway_config(
        ROUTE, {"default/early:8080": [("10.1.0.5", 8080)]}, services=("early",)
    )
    server = WaypointServer(config, connector=backends, enable_h2=False)
    server._loop = asyncio.get_running_loop()
    return server, backends


def _client(server: WaypointServer) -> tuple[Http1Connection, Wire]:
    conn = Http1Connection(server, server.config.listeners[0].parent)
    wire = Wire(strict=False)
    conn.connection_made(wire)
    return conn, wire


def test_playbook_early_answer_closes_the_upstream_and_the_next_request_opens_another() -> None:
    async def main() -> None:
        server, backends = await _playbook_server()
        client, client_wire = _client(server)
        client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabcd")
        await _settle()
        [(upstream, upstream_wire)] = backends.conns
        assert upstream_wire.out.endswith(b"\r\n\r\nabcd")
        upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await _settle()
        assert client_wire.out.startswith(b"HTTP/1.1 200 OK\r\n")
        assert client_wire.out.endswith(b"\r\n\r\nok")
        assert client_wire.closed  # the client still owed body bytes: its connection ends
        assert upstream_wire.closed and server.proxy.pool.stats.idle == 0

        second, second_wire = _client(server)
        second.data_received(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        await _settle()
        assert len(backends.conns) == 2 and b"/next" not in upstream_wire.out
        backends.conns[1][0].data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await _settle()
        assert second_wire.out.startswith(b"HTTP/1.1 200 OK\r\n") and not second_wire.closed
        assert server.proxy.pool.stats.idle == 1  # complete both ways: pooled

    asyncio.run(main())


def test_playbook_body_finished_after_the_answer_head_keeps_the_connection() -> None:
    async def main() -> None:
        server, backends = await _playbook_server()
        client, client_wire = _client(server)
        client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")
        await _settle()
        [(upstream, upstream_wire)] = backends.conns
        upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nha")
        await _settle()
        client.data_received(b"def")  # the body ends while the response is still open
        await _settle()
        assert upstream_wire.out.endswith(b"abcdef")
        upstream.data_received(b"lf")
        await _settle()
        assert client_wire.out.endswith(b"\r\n\r\nhalf") and not client_wire.closed
        assert not upstream_wire.closed and server.proxy.pool.stats.idle == 1

    asyncio.run(main())


def test_a_body_ending_short_of_its_content_length_leaves_the_request_owed() -> None:
    from l7proxy.exchange import RequestBody
    from l7proxy.forward import _request_end
    from l7proxy.http.parser import BodyKind

    async def main() -> None:
        for fed, owed in ((b"abcd", True), (b"abcdefghij", False)):
            conn = Http1Upstream(("10.1.0.5", 8080))
            conn.connection_made(Wire(strict=False))
            conn.begin(b"POST / HTTP/1.1\r\n\r\n", complete=False)
            body = RequestBody(BodyKind.LENGTH, 10, 1024)
            body.attach(conn.write, _request_end(conn, body, chunked=False))
            body.feed(fed)
            body.end()
            assert conn.request_complete is not owed

    asyncio.run(main())
