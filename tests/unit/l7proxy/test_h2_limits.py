"""The waypoint's HTTP/2 resource limits, attacked over real loopback sockets: rapid
reset, PING and SETTINGS floods, the stream cap, request-body flow control against a
backend that stops reading, the write-buffer ceiling, stalled streams, and cancels that
must reach the backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import h2.errors
import h2.events
from hyperframe.frame import PingFrame, RstStreamFrame, SettingsFrame

from agent.flows.flow import Verdict
from l7proxy.config import Limits
from tests.unit.l7proxy.h2wire import BASE, Client, RawClient, Waypoint, get, kind, waypoint

CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def dropped(wp: Waypoint, reason: str) -> list[Any]:
    wp.server.flows.flush()
    return [f for f in wp.flows if f.verdict is Verdict.DROPPED and f.drop_reason_desc == reason]


def rst(sid: int, code: int = h2.errors.ErrorCodes.CANCEL) -> bytes:
    frame = RstStreamFrame(sid)
    frame.error_code = code
    return bytes(frame.serialize())


# --- budgets ------------------------------------------------------------------------------


def test_rapid_reset_flood_gets_goaway_enhance_your_calm() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            sids = range(1, 2001, 2)  # 1000 streams, each reset at once (CVE-2023-44487)
            client.write(*(client.headers(s, get(b"/h1/x"), end=False) + rst(s) for s in sids))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert goaway.last_stream_id < 1999  # not every stream was taken on
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="reset_flood") == 1
            [flow] = dropped(wp, "H2_RESET_FLOOD")
            assert flow.ip.source == "127.0.0.1" and "RST_STREAM" in flow.summary
            await asyncio.sleep(0.2)
            assert wp.server.proxy.metrics.in_flight == 0  # every started request cancelled
            client.close()

    run(body)


def test_ping_flood_gets_goaway() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            client.write(*(bytes(PingFrame(0, b"%08d" % i).serialize()) for i in range(1000)))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            acks = [f for f in client.frames if kind("PingFrame")(f)]
            assert len(acks) <= Limits().h2_max_pings  # the rest were never answered
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="ping_flood") == 1
            assert dropped(wp, "H2_PING_FLOOD")
            client.close()

    run(body)


def test_settings_flood_gets_goaway() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            client.write(*(bytes(SettingsFrame(0).serialize()) for _ in range(500)))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="settings_flood") == 1
            assert dropped(wp, "H2_SETTINGS_FLOOD")
            client.close()

    run(body)


def test_traffic_within_the_budgets_is_served() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            frames = [bytes(PingFrame(0, b"%08d" % i).serialize()) for i in range(50)]
            frames += [client.headers(s, get(b"/h1/x"), end=False) + rst(s) for s in range(1, 101, 2)]
            frames.append(client.headers(101, get(b"/old/x")))
            client.write(*frames)
            answer = await client.until(lambda f: kind("HeadersFrame")(f) and f.stream_id == 101)
            assert answer is not None and answer.headers[b":status"] == b"301"
            assert not [f for f in client.frames if kind("GoAwayFrame")(f)]
            client.close()

    run(body)


# --- streams ------------------------------------------------------------------------------


def test_max_concurrent_streams_is_advertised_and_enforced() -> None:
    async def body() -> None:
        async with waypoint(Limits(h2_max_concurrent_streams=5)) as wp:
            client = await RawClient.connect(wp.port)
            settings = await client.until(kind("SettingsFrame"))
            assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 5
            client.write(bytes(SettingsFrame(0, flags=["ACK"]).serialize()))
            # five open request streams (bodies still coming): all taken on
            client.write(*(client.headers(s, get(b"/h1/x", b"POST"), end=False) for s in range(1, 11, 2)))
            assert await client.until(kind("GoAwayFrame"), timeout=0.5) is None
            client.write(client.headers(11, get(b"/h1/x", b"POST"), end=False))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="too_many_streams") == 1
            client.close()
        async with waypoint() as wp:  # the default: 100, also after the client's ACK
            client = await RawClient.connect(wp.port)
            await client.until(kind("SettingsFrame"))
            await client.until(kind("SettingsFrame"), timeout=0.3)  # any update (there is none)
            ack = bytes(SettingsFrame(0, flags=["ACK"]).serialize())
            client.write(ack, ack)
            post = get(b"/h1/x", b"POST")
            client.write(*(client.headers(s, post, end=False) for s in range(1, 203, 2)))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.last_stream_id == 199
            client.close()

    run(body)


def test_client_cancel_resets_the_h2_upstream_stream() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await Client.connect(wp.port)
            grpc = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
            client.h2.send_headers(1, [*get(b"/grpc.Echo/Say", b"POST"), *grpc])
            client.h2.send_data(1, b"\x00\x00\x00\x00\x02hi")
            client.send()
            for _ in range(50):
                if wp.h2.requests:
                    break
                await asyncio.sleep(0.05)
            [upstream_sid] = wp.h2.requests
            client.h2.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
            client.send()
            for _ in range(50):
                if wp.h2.resets:
                    break
                await asyncio.sleep(0.05)
            assert wp.h2.resets == [(upstream_sid, h2.errors.ErrorCodes.CANCEL)]
            client.close()

    run(body)


def test_client_cancel_aborts_the_http1_upstream_connection() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await Client.connect(wp.port)
            client.h2.send_headers(1, get(b"/h1/x"), end_stream=True)
            client.send()
            for _ in range(50):
                if wp.h1.received:
                    break
                await asyncio.sleep(0.05)
            assert wp.h1.received and not wp.h1.closed
            client.h2.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
            client.send()
            for _ in range(50):
                if wp.h1.closed:
                    break
                await asyncio.sleep(0.05)
            assert wp.h1.closed == 1
            assert wp.server.proxy.pool.stats.idle == 0  # never handed to another request
            client.close()

    run(body)


def test_stream_stalled_on_its_client_is_reset() -> None:
    async def body() -> None:
        limits = Limits(h2_stream_timeout=0.5, header_timeout=0.4)  # sweeper every 0.1 s
        async with waypoint(limits) as wp:
            client = await Client.connect(wp.port)
            client.h2.send_headers(1, get(b"/h1/x", b"POST"))  # a body that never comes
            client.h2.send_data(1, b"x")
            client.send()
            answer = await client.response(1)
            assert answer.get("reset") == h2.errors.ErrorCodes.CANCEL
            assert wp.metric("tulle_waypoint_h2_stream_resets_total", reason="stalled") == 1
            client.close()

    run(body)


def test_response_not_read_by_its_client_is_reset_and_so_is_the_backend_stream() -> None:
    async def body() -> None:
        limits = Limits(h2_stream_timeout=0.5, header_timeout=0.4)
        async with waypoint(limits, respond=4 << 20) as wp:
            client = await Client.connect(wp.port)
            client.h2.send_headers(1, get(b"/grpc.Echo/Big"), end_stream=True)
            client.send()
            reset = await client.until(lambda e: isinstance(e, h2.events.StreamReset))
            assert reset is not None and reset.error_code == h2.errors.ErrorCodes.CANCEL
            assert wp.metric("tulle_waypoint_h2_stream_resets_total", reason="stalled") == 1
            for _ in range(50):
                if wp.h2.resets:
                    break
                await asyncio.sleep(0.05)
            assert [code for _, code in wp.h2.resets] == [h2.errors.ErrorCodes.CANCEL]
            client.close()

    run(body)


# --- flow control and buffers -----------------------------------------------------------------


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


async def send_until_stalled(client: Client, sid: int, size: int, *, end: bool = False) -> int:
    """Send up to ``size`` body bytes as the window allows; stop when the window stays
    shut for a second. Returns the bytes sent."""
    chunk = b"x" * 16384
    sent = 0
    while sent < size:
        window = client.h2.local_flow_control_window(sid)
        if window > 0:
            n = min(window, len(chunk), size - sent)
            client.h2.send_data(sid, chunk[:n], end_stream=end and sent + n == size)
            sent += n
            if sent % (1 << 18) == 0 or n == window:
                client.send()
                await client.writer.drain()
            continue
        client.send()
        await client.writer.drain()
        try:
            await client.read(timeout=1.0)
        except TimeoutError:
            return sent
    client.send()
    await client.writer.drain()
    return sent


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
            assert not wp.server.connections
            client.close()

    run(body)


# --- request heads --------------------------------------------------------------------------

BAD_HEADS: list[tuple[str, list[tuple[bytes, bytes]]]] = [
    ("space in :path", [(b":method", b"GET"), (b":path", b"/h1/a HTTP/1.1"), *BASE]),
    ("CRLF in :path", [(b":method", b"GET"), (b":path", b"/h1/a\r\nx-injected: 1"), *BASE]),
    ("tab in :path", [(b":method", b"GET"), (b":path", b"/h1/a\tb"), *BASE]),
    ("space in :method", [(b":method", b"GET /admin"), (b":path", b"/h1/a"), *BASE]),
    ("CTL in :method", [(b":method", b"GE\x0bT"), (b":path", b"/h1/a"), *BASE]),
    ("bad :authority", [(b":method", b"GET"), (b":path", b"/h1/a"), (b":scheme", b"http"),
                        (b":authority", b"example.com/evil")]),
    ("CRLF :authority", [(b":method", b"GET"), (b":path", b"/h1/a"), (b":scheme", b"http"),
                         (b":authority", b"a\r\nx: y")]),
    ("absolute :path", [(b":method", b"GET"), (b":path", b"http://x/h1"), *BASE]),
    ("fragment", [(b":method", b"GET"), (b":path", b"/h1/a#b"), *BASE]),
    ("uppercase name", [*get(b"/h1/a"), (b"X-Upper", b"1")]),
    ("NUL in value", [*get(b"/h1/a"), (b"x-v", b"a\x00b")]),
    ("LF in value", [*get(b"/h1/a"), (b"x-v", b"a\nx-injected: 1")]),
    ("connection header", [*get(b"/h1/a"), (b"connection", b"close")]),
    ("transfer-encoding", [*get(b"/h1/a"), (b"transfer-encoding", b"chunked")]),
    ("te gzip", [*get(b"/h1/a"), (b"te", b"gzip")]),
    ("missing :path", [(b":method", b"GET"), *BASE]),
    ("duplicate :path", [*get(b"/h1/a"), (b":path", b"/h1/b")]),
    ("pseudo after regular", [(b":method", b"GET"), (b"x-a", b"1"), (b":path", b"/h1/a"), *BASE]),
    ("host differs", [*get(b"/h1/a"), (b"host", b"other.example")]),
    ("unknown pseudo", [*get(b"/h1/a"), (b":protocol", b"websocket")]),
]


def test_malformed_request_heads_are_stream_errors_and_never_forwarded() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            for i, (what, block) in enumerate(BAD_HEADS):
                sid = 1 + 2 * i
                client.write(client.headers(sid, block))
                reset = await client.until(lambda f, s=sid: f.stream_id == s and not kind("DataFrame")(f))  # type: ignore[misc]
                assert reset is not None, f"{what}: connection closed"
                assert kind("RstStreamFrame")(reset), f"{what}: answered {reset}"
                assert reset.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR, what
            sid = 1 + 2 * len(BAD_HEADS)
            client.write(client.headers(sid, get(b"/old/fine")))  # the connection still works
            answer = await client.until(lambda f: kind("HeadersFrame")(f) and f.stream_id == sid)
            assert answer is not None and answer.headers[b":status"] == b"301"
            await asyncio.sleep(0.1)
            assert wp.h1.received == 0 and not wp.h1.transports
            assert len(dropped(wp, "MALFORMED_REQUEST")) == len(BAD_HEADS)
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
