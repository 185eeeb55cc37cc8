"""The waypoint's HTTP/2 limits, attacked over real loopback sockets: rapid reset, PING
and SETTINGS floods, the stream cap, stalled streams, cancels that must reach the
backend, and malformed request heads (flow control and buffers: ``test_h2_flow``)."""

from __future__ import annotations

import asyncio
from typing import Any

import h2.errors
import h2.events
from hyperframe.frame import PingFrame, RstStreamFrame, SettingsFrame

from l7proxy.config import Limits
from tests.unit.l7proxy.h2lab import dropped, waypoint
from tests.unit.l7proxy.h2wire import BASE, Client, RawClient, get, kind, run

CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


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


def test_resets_the_client_provokes_count_against_its_budget() -> None:
    """MadeYouReset (CVE-2025-8671): requests the waypoint must reset (malformed) cost the
    client nothing either, so they draw on the same budget as its own RST_STREAM."""

    async def body() -> None:
        async with waypoint(Limits(h2_max_resets=5)) as wp:
            client = await RawClient.connect(wp.port)
            bad = [(b":method", b"GET"), (b":path", b"/h1/a b"), *BASE]
            client.write(*(client.headers(s, bad) for s in range(1, 21, 2)))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="reset_flood") == 1
            client.close()

    run(body)


def test_traffic_within_the_budgets_is_served() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            frames = [bytes(PingFrame(0, b"%08d" % i).serialize()) for i in range(50)]
            frames += [
                client.headers(s, get(b"/h1/x"), end=False) + rst(s) for s in range(1, 101, 2)
            ]
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
            client.write(
                *(client.headers(s, get(b"/h1/x", b"POST"), end=False) for s in range(1, 11, 2))
            )
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


# --- request heads --------------------------------------------------------------------------

BAD_HEADS: list[tuple[str, list[tuple[bytes, bytes]]]] = [
    ("space in :path", [(b":method", b"GET"), (b":path", b"/h1/a HTTP/1.1"), *BASE]),
    ("CRLF in :path", [(b":method", b"GET"), (b":path", b"/h1/a\r\nx-injected: 1"), *BASE]),
    ("tab in :path", [(b":method", b"GET"), (b":path", b"/h1/a\tb"), *BASE]),
    ("space in :method", [(b":method", b"GET /admin"), (b":path", b"/h1/a"), *BASE]),
    ("CTL in :method", [(b":method", b"GE\x0bT"), (b":path", b"/h1/a"), *BASE]),
    (
        "bad :authority",
        [
            (b":method", b"GET"),
            (b":path", b"/h1/a"),
            (b":scheme", b"http"),
            (b":authority", b"example.com/evil"),
        ],
    ),
    (
        "CRLF :authority",
        [
            (b":method", b"GET"),
            (b":path", b"/h1/a"),
            (b":scheme", b"http"),
            (b":authority", b"a\r\nx: y"),
        ],
    ),
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
                reset = await client.until(
                    lambda f, s=sid: f.stream_id == s and not kind("DataFrame")(f)
                )  # type: ignore[misc]
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


def test_connect_is_answered_405_like_over_http1() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            client.write(client.headers(1, [(b":method", b"CONNECT"), (b":authority", b"h:443")]))
            answer = await client.until(lambda f: kind("HeadersFrame")(f) and f.stream_id == 1)
            assert answer is not None and answer.headers[b":status"] == b"405"

            def ends(f: Any) -> bool:
                return f.stream_id == 1 and "END_STREAM" in getattr(f, "flags", ())

            assert any(ends(f) for f in client.frames) or await client.until(ends)
            assert not wp.h1.transports
            client.close()

    run(body)
