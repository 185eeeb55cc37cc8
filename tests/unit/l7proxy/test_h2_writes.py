"""The h2 connections' output coalesced (``h2write``): one socket write per side for a
unary call's steps, nothing held is lost to a GOAWAY or a close, a flood of tiny frames
cannot grow what is held, and a client that does not read still stops the backend."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.connection
import h2.events
from hyperframe.frame import GoAwayFrame, PingFrame

from l7proxy import h2limits
from l7proxy.config import Limits
from l7proxy.h2 import H2Frontend
from l7proxy.h2write import COALESCE_MAX
from tests.unit.l7proxy.h2lab import Waypoint, waypoint
from tests.unit.l7proxy.h2wire import Client, RawClient, get, kind, run

GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
MESSAGE = b"\x00\x00\x00\x00\x05hello"


class Counting:
    """A transport that counts its writes (and passes everything on)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[int] = []

    def write(self, data: bytes) -> None:
        self.writes.append(len(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def front_of(wp: Waypoint) -> H2Frontend:
    [conn] = wp.server.connections
    assert conn.h2 is not None
    return conn.h2


async def call(client: Client, sid: int) -> dict[str, Any]:
    client.h2.send_headers(sid, [*get(b"/grpc.Echo/Say", b"POST"), *GRPC])
    client.h2.send_data(sid, MESSAGE, end_stream=True)
    client.send()
    return await client.response(sid)


def test_a_unary_call_is_one_write_per_step_of_the_exchange_on_each_side() -> None:
    """Head, DATA and end of the response leave in one write toward the client; the
    request's head, body and end in one toward the backend (they were one write each)."""

    async def body() -> None:
        async with waypoint(respond=100) as wp:
            client = await Client.connect(wp.port)
            first = await call(client, 1)  # the connections and their SETTINGS first
            assert first.get("ended") and len(first["data"]) == 100
            [conn] = wp.server.connections
            [upstream] = wp.server.proxy.h2.clients.values()  # type: ignore[attr-defined]
            down, up = Counting(conn.transport), Counting(upstream.transport)
            conn.transport, upstream.transport = down, up
            second = await call(client, 3)
            assert second.get("ended") and len(second["data"]) == 100
            await asyncio.sleep(0.05)  # anything still due (a late WINDOW_UPDATE) counted
            # toward the client: the request window reopened, then the whole response
            assert 1 <= len(down.writes) <= 2, down.writes
            # toward the backend: the request, then the response's window reopened
            assert 1 <= len(up.writes) <= 2, up.writes
            client.close()

    run(body)


def test_a_goaway_takes_what_was_held_with_it_before_the_fin() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            await client.until(kind("SettingsFrame"))
            front = front_of(wp)
            front.h2.ping(b"heldback")
            front.flush()  # held for the end of this loop iteration
            front._calm(h2limits.RESET_FLOOD, "a test's GOAWAY")  # FIN right after
            goaway = await client.until(kind("GoAwayFrame"))
            assert isinstance(goaway, GoAwayFrame)
            pings = [f for f in client.frames if isinstance(f, PingFrame)]
            assert [p.opaque_data for p in pings] == [b"heldback"]
            assert client.frames.index(pings[0]) < client.frames.index(goaway)
            client.close()

    run(body)


def test_a_peers_goaway_closes_only_after_what_was_held_is_written() -> None:
    """The client's GOAWAY read in the same loop iteration as output was held: the held
    bytes are written before the close (``h2`` itself drops what it had queued)."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            await client.until(kind("SettingsFrame"))
            front = front_of(wp)
            front.h2.ping(b"heldback")
            front.flush()
            front.data_received(bytes(GoAwayFrame(0, last_stream_id=0).serialize()))
            ping = await client.until(kind("PingFrame"))
            assert ping is not None and ping.opaque_data == b"heldback"
            await client.until(lambda f: False, timeout=2)
            assert client.closed  # and then the connection closed
            client.close()

    run(body)


class Watched:
    """The front end's ``h2`` as its Coalescer sees it: records how much was already
    held each time it takes more."""

    def __init__(self, front: H2Frontend) -> None:
        self.conn: h2.connection.H2Connection = front.h2
        self.front = front
        self.held_before: list[int] = []

    def data_to_send(self) -> bytes:
        self.held_before.append(self.front.out.size)
        return self.conn.data_to_send()


def test_a_flood_of_tiny_frames_never_piles_up_past_the_coalescing_bound() -> None:
    async def body() -> None:
        count = 20_000
        async with waypoint(Limits(h2_max_pings=count * 2)) as wp:
            client = await RawClient.connect(wp.port)
            await client.until(kind("SettingsFrame"))
            front = front_of(wp)
            watched = Watched(front)
            front.out.h2 = watched  # type: ignore[assignment]
            pings = [bytes(PingFrame(0, b"%08d" % i).serialize()) for i in range(count)]
            for start in range(0, count, 2000):
                client.write(*pings[start : start + 2000])
            seen = 0
            while seen < count and not client.closed:
                frames = await client.read(timeout=10)
                seen += sum(1 for f in frames if isinstance(f, PingFrame) and "ACK" in f.flags)
            assert seen == count  # every ACK written: nothing held was dropped
            assert watched.held_before and max(watched.held_before) < COALESCE_MAX
            client.close()

    run(body)


def test_a_client_that_does_not_read_still_stops_the_backend_through_pause_writing() -> None:
    """Flow control cannot stop it (the client opens every window to the maximum): the
    socket's write buffer pauses the stream, its backend stream is held, and the backend
    stops once its window is spent; it goes on once the client reads."""

    async def body() -> None:
        size = 16 << 20
        async with waypoint(respond=size) as wp:
            client = await Client.connect(wp.port, rcvbuf=4096)
            big = (1 << 31) - 1
            client.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: big})
            client.h2.increment_flow_control_window(big - 65_535)
            client.send()
            client.h2.send_headers(1, get(b"/grpc.Echo/Big"), end_stream=True)
            client.send()
            await client.writer.drain()
            sent = -1
            for _ in range(100):  # until the backend stops sending
                await asyncio.sleep(0.05)
                if wp.h2.sent == sent:
                    break
                sent = wp.h2.sent
            front = front_of(wp)
            assert not front.writable  # the socket's buffer paused the stream
            assert 0 < wp.h2.sent < size // 2, f"backend sent {wp.h2.sent} to a client not reading"
            assert front.out.size < COALESCE_MAX
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="write_buffer") == 0
            stalled = wp.h2.sent
            got = 0
            while wp.h2.sent < stalled + (4 << 20):  # the client reads: the backend goes on
                for event in await client.read():
                    if isinstance(event, h2.events.DataReceived):
                        got += len(event.data or b"")
            assert got > 0
            client.close()

    run(body)
