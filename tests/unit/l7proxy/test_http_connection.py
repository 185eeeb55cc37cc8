"""Playbooks for the client connection state machine (``Http1Connection``) without
sockets: bytes fed to ``data_received``, the exact bytes written to a fake transport.
Only locally answered routes (404, redirect) are used, so no backend is involved."""

from __future__ import annotations

import asyncio

from l7proxy.config import Limits
from l7proxy.h1 import Http1Connection
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from tests.unit.l7proxy.h1lab import Wire

REDIRECT = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: new.example, statusCode: 302}}]
"""


async def connection(limits: Limits | None = None) -> tuple[Http1Connection, Wire]:
    server = WaypointServer(gateway_config(REDIRECT, {}, limits=limits), enable_h2=False)
    server._loop = asyncio.get_running_loop()
    conn = Http1Connection(server, server.config.listeners[0].parent)
    transport = Wire()
    conn.connection_made(transport)
    return conn, transport


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def redirect(path: bytes, *, close: bool = False) -> bytes:
    tail = b"connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 302 Found\r\nlocation: http://new.example" + path + b"\r\n"
        b"content-length: 0\r\n" + tail + b"\r\n"
    )


def test_pipelined_requests_are_answered_in_order_then_close() -> None:
    async def main() -> None:
        conn, transport = await connection()
        conn.data_received(
            b"GET /old/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /old/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            b"GET /old/never HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        await settle()
        out = transport.take()
        first, rest = out.split(b"\r\n\r\n", 1)
        assert first + b"\r\n\r\n" == redirect(b"/old/1")
        assert rest.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert rest.endswith(redirect(b"/old/2", close=True))
        assert b"/old/never" not in out and transport.closed and not transport.reading

    asyncio.run(main())


def test_request_split_into_single_bytes_gets_one_answer() -> None:
    async def main() -> None:
        conn, transport = await connection()
        for byte in b"GET /old/x HTTP/1.1\r\nHost: a\r\n\r\n":
            conn.data_received(bytes([byte]))
        await settle()
        assert transport.take() == redirect(b"/old/x")
        assert not transport.closed

    asyncio.run(main())


def test_error_after_good_requests_is_answered_after_them_then_closes() -> None:
    async def main() -> None:
        conn, transport = await connection()
        conn.data_received(
            b"GET /old/1 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost : a\r\n\r\n"
        )
        await settle()
        out = transport.take()
        assert out.startswith(redirect(b"/old/1"))
        assert out[len(redirect(b"/old/1")) :].startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert transport.closed and not transport.reading

    asyncio.run(main())


def test_too_many_pipelined_requests_pause_reading() -> None:
    async def main() -> None:
        conn, transport = await connection(Limits(max_pipeline=2))
        request = b"GET /old/p HTTP/1.1\r\nHost: a\r\n\r\n"
        conn.data_received(request * 4)
        assert not transport.reading  # three queued behind the first: over the bound
        await settle()
        assert transport.take().count(b"HTTP/1.1 302") == 4
        assert transport.reading  # drained: reading again

    asyncio.run(main())


def test_slow_head_times_out_with_408_and_idle_closes() -> None:
    async def main() -> None:
        conn, transport = await connection()
        conn.data_received(b"GET /old HTTP/1.1\r\nHo")
        now = conn.server.loop.time()
        conn.check(now + 1, header_timeout=5, idle_timeout=60)
        assert transport.take() == b""
        conn.check(now + 6, header_timeout=5, idle_timeout=60)
        assert transport.take().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert transport.closed
        idle, idle_transport = await connection()
        idle.check(idle.idle_since + 61, header_timeout=5, idle_timeout=60)
        assert idle_transport.closed and idle_transport.take() == b""

    asyncio.run(main())
