"""HTTP/2 flow control and buffers over real loopback sockets: windows reopen only as
bytes are passed on (to a backend that stops reading, from an h2c backend to a client
that stops reading), kept bodies and write buffers are bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.events
import pytest

from l7proxy.config import Limits
from l7proxy.upstream import Connector
from tests.unit.l7proxy.h2lab import dropped, waypoint
from tests.unit.l7proxy.h2wire import Client, RawClient, get, run, send_until_stalled


def test_request_body_window_opens_only_as_the_backend_reads() -> None:
    async def body() -> None:
        total = 24 << 20
        async with waypoint(paused=True) as wp:
            client = await Client.connect(wp.port)
            await client.read()
            client.h2.send_headers(1, [*get(b"/h1/upload", b"POST"), *()])
            sent = await send_until_stalled(client, 1, total)
            assert sent < 12 << 20, f"{sent} bytes accepted while the backend read nothing"
            wp.h1.resume()  # the backend reads: the window reopens as bytes pass on
            sent += await send_until_stalled(client, 1, total - sent, end=True)
            assert sent == total
            for _ in range(100):
                if wp.h1.received >= total:
                    break
                await asyncio.sleep(0.05)
            assert wp.h1.received >= total
            client.close()

    run(body)


def test_bodies_kept_for_retries_are_bounded_per_connection() -> None:
    async def body() -> None:
        limit = 1 << 20
        async with waypoint(Limits(h2_max_kept_bodies=limit)) as wp:
            client = await Client.connect(wp.port)
            await client.read()
            for sid in (1, 3, 5, 7):  # four bodies of 768 KiB, each under max_buffered_body
                client.h2.send_headers(sid, get(b"/h1/upload", b"POST"))
                assert await send_until_stalled(client, sid, 768 << 10) == 768 << 10
            for _ in range(100):
                if wp.h1.received >= 4 * (768 << 10):
                    break
                await asyncio.sleep(0.05)
            [conn] = wp.server.connections
            front = conn.h2
            assert front is not None and len(front.streams) == 4
            kept = [s.body.size for s in front.streams.values() if s.body.kept]
            assert sum(kept) <= limit and front.kept == sum(kept)
            assert len(kept) < 4  # the rest streamed on without a retry copy
            assert wp.h1.received >= 4 * (768 << 10)  # every byte still reached the backend
            client.close()

    run(body)


def test_h2_backend_window_opens_only_as_the_client_reads() -> None:
    async def body() -> None:
        size = 8 << 20
        async with waypoint(respond=size) as wp:
            client = await Client.connect(wp.port)
            client.h2.send_headers(1, get(b"/grpc.Echo/Big"), end_stream=True)
            client.send()
            for _ in range(10):  # read, never acknowledge: the client's window stays shut
                try:
                    await client.read(timeout=0.1)
                except TimeoutError:
                    pass
            assert 0 < wp.h2.sent < 3 << 20, f"backend sent {wp.h2.sent} to a stalled client"
            answer = await client.response(1, timeout=20)  # now read and acknowledge
            assert answer.get("ended") and len(answer["data"]) == size
            client.close()

    run(body)


def test_write_buffer_ceiling_closes_a_client_that_does_not_read() -> None:
    async def body() -> None:
        limits = Limits(h2_max_write_buffer=128 * 1024)
        async with waypoint(limits) as wp:
            client = await RawClient.connect(wp.port, rcvbuf=4096)
            path = b"/old/" + b"p" * 4000  # the redirect's Location repeats it
            for batch in range(20):
                sids = range(1 + batch * 200, 201 + batch * 200, 2)
                client.write(*(client.headers(s, get(path + b"%d" % s)) for s in sids))
                await asyncio.sleep(0.02)
                if wp.metric("tulle_waypoint_h2_goaways_total", reason="write_buffer"):
                    break
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="write_buffer") == 1
            assert dropped(wp, "H2_WRITE_BUFFER_FULL")
            for _ in range(100):  # the abort's connection_lost comes a loop iteration later
                if not wp.server.connections:
                    break
                await asyncio.sleep(0.01)
            assert not wp.server.connections
            client.close()

    run(body)


def test_h2c_request_with_body_still_reaches_the_backend() -> None:
    """The ordinary path keeps working under the limits: a body larger than the window."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await Client.connect(wp.port)
            await client.read()
            client.h2.send_headers(1, get(b"/h1/upload", b"POST"))
            sent = await send_until_stalled(client, 1, 3 << 20, end=True)
            assert sent == 3 << 20
            for _ in range(100):
                if wp.h1.received >= sent:
                    break
                await asyncio.sleep(0.05)
            assert wp.h1.received >= sent
            assert isinstance(client.goaway(), type(None))
            assert not [e for e in client.events if isinstance(e, h2.events.StreamReset)]
            client.close()

    run(body)


def test_shared_h2_backend_connection_keeps_its_window_across_slow_clients() -> None:
    """A response that ends while its client is slow must still give the backend
    connection its window back, or the shared connection stalls for everyone."""

    async def body() -> None:
        size = 150 << 10  # ends while the client side holds it (past 64 KiB buffered)
        async with waypoint(respond=size) as wp:
            client = await Client.connect(wp.port)
            for i in range(5):
                sid = 1 + 2 * i
                client.h2.send_headers(sid, get(b"/grpc.Echo/Big"), end_stream=True)
                client.send()
                await asyncio.sleep(0.05)  # the client is slow to read
                answer = await client.response(sid, timeout=5)
                assert answer.get("ended") and len(answer["data"]) == size, i
            [upstream] = wp.server.proxy.h2.clients.values()  # type: ignore[attr-defined]
            window = upstream.h2._inbound_flow_control_window_manager
            # every byte received was acknowledged (sent as WINDOW_UPDATE or batched)
            assert window.current_window_size + window._bytes_processed == window.max_window_size
            client.close()

    run(body)


def test_bodies_that_arrive_before_their_upstream_still_keep_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bodies over the connection's retry budget that arrive while no upstream is attached
    yet (a slow connect) are passed on when it is, without a retry copy: the budget holds.
    Under load this raced: two such bodies stayed kept, 1.5 MiB against a 1 MiB budget."""
    connect = Connector.connect

    async def slow_connect(self: Connector, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)  # every body below arrives before its upstream exists
        return await connect(self, *args, **kwargs)

    monkeypatch.setattr(Connector, "connect", slow_connect)

    async def body() -> None:
        limit = 1 << 20
        async with waypoint(Limits(h2_max_kept_bodies=limit)) as wp:
            client = await Client.connect(wp.port)
            await client.read()
            for sid in (1, 3, 5, 7):
                client.h2.send_headers(sid, get(b"/h1/upload", b"POST"))
                assert await send_until_stalled(client, sid, 768 << 10) == 768 << 10
            for _ in range(200):
                if wp.h1.received >= 4 * (768 << 10):
                    break
                await asyncio.sleep(0.05)
            assert wp.h1.received >= 4 * (768 << 10)  # every byte reached the backend
            [conn] = wp.server.connections
            front = conn.h2
            assert front is not None
            kept = [s.body.size for s in front.streams.values() if s.body.kept]
            assert sum(kept) <= limit and front.kept == sum(kept)
            client.close()

    run(body)
