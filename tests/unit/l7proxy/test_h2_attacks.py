"""Attacks on the waypoint's HTTP/2 promises (issue 9 review), over real loopback sockets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest
from hpack import Encoder, NeverIndexedHeaderTuple
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from l7proxy.config import Limits
from l7proxy.exchange import RequestBody
from l7proxy.h2stream import DROP, ENCODER_TABLE, H2Stream, Sender
from l7proxy.http.parser import BodyKind
from l7proxy.http.wire import HOP_BY_HOP
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from tests.unit.l7proxy.h1lab import raw_waypoint
from tests.unit.l7proxy.h2lab import dropped, waypoint
from tests.unit.l7proxy.h2wire import Client, RawClient, get, kind, run

CALM = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def data(sid: int, payload: bytes = b"", *, end: bool = False) -> bytes:
    frame = DataFrame(sid, payload)
    if end:
        frame.flags.add("END_STREAM")
    return bytes(frame.serialize())


def window_update(sid: int, increment: int) -> bytes:
    frame = WindowUpdateFrame(sid)
    frame.window_increment = increment
    return bytes(frame.serialize())


# --- budgets ------------------------------------------------------------------------------

PROVOKE = {
    # h2 itself resets the stream (a stream error), so no RST_STREAM of the client's counts.
    "stream window overflow": (False, lambda s: window_update(s, 2**31 - 1)),
    "DATA after END_STREAM": (True, lambda s: data(s, b"x")),
}


@pytest.mark.parametrize("how", sorted(PROVOKE))
def test_resets_the_h2_library_sends_for_the_client_draw_on_its_budget(how: str) -> None:
    """MadeYouReset (CVE-2025-8671) without malformed heads: each request starts backend
    work, then a frame that is a stream error makes the waypoint reset it. Those resets
    free the stream slot just as the client's own RST_STREAM would."""
    ended, provoke = PROVOKE[how]

    async def body() -> None:
        async with waypoint(Limits(h2_max_resets=5)) as wp:
            client = await RawClient.connect(wp.port)
            for s in range(1, 41, 2):
                client.write(client.headers(s, get(b"/h1/x"), end=ended))
                await asyncio.sleep(0.01)  # the exchange is under way
                client.write(provoke(s))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert goaway.last_stream_id < 39
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="reset_flood") == 1
            assert wp.metric("tulle_waypoint_h2_stream_resets_total", reason="protocol") >= 5
            client.close()

    run(body)


def priority(sid: int) -> bytes:
    return bytes(PriorityFrame(sid, depends_on=0).serialize())


NOTHING = {
    "empty DATA": data(1),
    "PRIORITY": priority(3),
    "PING ACK": bytes(PingFrame(0, b"12345678", flags=["ACK"]).serialize()),
    "SETTINGS ACK": bytes(SettingsFrame(0, flags=["ACK"]).serialize()),
}


@pytest.mark.parametrize("what", sorted(NOTHING))
def test_frames_that_carry_nothing_are_budgeted(what: str) -> None:
    """CVE-2019-9518 (empty frames), PRIORITY floods, ACKs of nothing: each costs the
    waypoint a parse and an event and the client 9 bytes; 100 k held the loop ~1 s."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            client.write(client.headers(1, get(b"/h1/x", b"POST"), end=False))
            client.write(NOTHING[what] * 100_000)
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="empty_flood") == 1
            assert dropped(wp, "H2_EMPTY_FRAME_FLOOD")
            client.close()

    run(body)


def header_block(sid: int, block: bytes) -> bytes:
    """One HEADERS frame carrying an encoded ``block`` (END_HEADERS, END_STREAM)."""
    return bytes(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize())


def test_hpack_bomb_is_refused_by_its_decoded_size() -> None:
    """A 4 kB field indexed once, then referenced by one byte 2000 times: 2 kB on the wire,
    8 MB decoded. SETTINGS_MAX_HEADER_LIST_SIZE (64 KiB) holds while decoding."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            encoder = Encoder()
            big = (b"x-big", b"a" * 4000)
            first = encoder.encode([*get(b"/h1/a"), big])
            head = encoder.encode([NeverIndexedHeaderTuple(n, v) for n, v in get(b"/h1/b")])
            bomb = head + encoder.encode([big]) * 2000  # x-big stays in the table
            assert len(bomb) < 2100
            client.write(header_block(1, first), header_block(3, bomb))
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            assert goaway.last_stream_id == 1  # the bomb never became a request
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="protocol_error") == 1
            client.close()

    run(body)


def test_continuation_flood_without_end_headers_ends_the_connection() -> None:
    """CVE-2024-27316 class: CONTINUATION frames that never end the header block."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            start = HeadersFrame(1, Encoder().encode(get(b"/h1/x")))
            flood = bytes(ContinuationFrame(1, b"\x00" * 16_000).serialize()) * 200
            client.write(bytes(start.serialize()) + flood)
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
            assert not wp.h1.transports
            client.close()

    run(body)


def test_window_updates_beyond_the_data_sent_are_budgeted() -> None:
    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            client.write(window_update(0, 1) * 100_000)
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None and goaway.error_code == CALM
            reason = "window_update_flood"
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason=reason) == 1
            assert dropped(wp, "H2_WINDOW_UPDATE_FLOOD")
            client.close()

    run(body)


def test_window_updates_that_follow_the_data_are_never_budgeted_away() -> None:
    """A client reading 8 MiB in 16 KiB frames returns the window as it goes: hundreds of
    WINDOW_UPDATEs, far over the time budget (20 here), all earned by the data sent."""

    async def body() -> None:
        async with waypoint(Limits(h2_max_window_updates=20), respond=8 << 20) as wp:
            client = await Client.connect(wp.port)
            client.h2.send_headers(1, get(b"/grpc.Echo/Say"), end_stream=True)
            client.send()
            answer = await client.response(1, timeout=20)
            assert answer.get("ended") and len(answer["data"]) == 8 << 20
            assert client.goaway() is None
            client.close()

    run(body)


# --- flow control ---------------------------------------------------------------------------


def initial_window(size: int) -> bytes:
    frame = SettingsFrame(0)
    frame.settings[SettingsFrame.INITIAL_WINDOW_SIZE] = size
    return bytes(frame.serialize())


def test_a_settings_change_that_reopens_stream_windows_resumes_responses() -> None:
    """RFC 9113 6.9.2: SETTINGS_INITIAL_WINDOW_SIZE adjusts every open stream's window
    (it may go negative); a client that raises it again owes no WINDOW_UPDATE."""

    async def body() -> None:
        async with waypoint(respond=40_000) as wp:
            client = await RawClient.connect(wp.port)
            client.write(initial_window(0), client.headers(1, get(b"/grpc.Echo/Say")))
            head = await client.until(lambda f: kind("HeadersFrame")(f) and f.stream_id == 1)
            assert head is not None and head.headers[b":status"] == b"200"
            assert await client.until(kind("DataFrame"), timeout=0.3) is None  # window 0
            client.write(initial_window(65_535))

            def ended(f: Any) -> bool:
                return kind("DataFrame")(f) and "END_STREAM" in f.flags

            assert await client.until(ended) is not None
            got = sum(len(f.data) for f in client.frames if kind("DataFrame")(f))
            assert got == 40_000
            client.close()

    run(body)


def test_connection_window_updates_cost_work_only_for_streams_that_can_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 99 responses blocked on their own (zero) stream windows, each 13-byte
    connection WINDOW_UPDATE used to retry all 99 streams: a CPU amplifier (within the
    WINDOW_UPDATE budget, raised here to show the cost per frame)."""
    flushes = 0
    flush = Sender.flush

    def counting(self: Sender) -> None:
        nonlocal flushes
        flushes += 1
        flush(self)

    async def body() -> None:
        nonlocal flushes
        async with waypoint(Limits(h2_max_window_updates=2000), respond=1000) as wp:
            client = await RawClient.connect(wp.port)
            client.write(initial_window(0))
            client.write(*(client.headers(s, get(b"/grpc.Echo/Say")) for s in range(1, 199, 2)))
            for _ in range(100):
                heads = [f for f in client.frames if kind("HeadersFrame")(f)]
                if len(heads) == 99:
                    break
                await client.read(timeout=1.0)
            await asyncio.sleep(0.2)
            flushes = 0
            client.write(window_update(0, 1) * 1000)
            client.write(client.headers(199, get(b"/old/x")))  # served after all of them
            assert await client.until(lambda f: getattr(f, "stream_id", 0) == 199) is not None
            assert flushes < 3000, flushes  # was 99 per WINDOW_UPDATE
            client.close()

    monkeypatch.setattr(Sender, "flush", counting)
    run(body)


def test_frame_over_max_frame_size_ends_the_connection_before_it_is_buffered() -> None:
    """RFC 9113 4.2: a frame longer than SETTINGS_MAX_FRAME_SIZE is a connection error.
    The ``h2`` library checks only once the whole (up to 16 MiB) frame is buffered: a
    client could park that much per connection, outside flow control, for free."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            client.write(client.headers(1, get(b"/h1/x", b"POST"), end=False))
            client.write((0xFFFFFF).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big"))
            client.write(b"x" * (1 << 20))  # a sixteenth of it: the rest never needs to come
            goaway = await client.until(kind("GoAwayFrame"))
            assert goaway is not None
            assert goaway.error_code == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
            assert wp.metric("tulle_waypoint_h2_goaways_total", reason="frame_size") == 1
            [flow] = dropped(wp, "H2_FRAME_TOO_LARGE")
            assert "16777215-byte frame" in flow.summary
            client.close()

    run(body)


def test_prior_knowledge_preface_then_http1_garbage_is_closed_at_once() -> None:
    """The bytes "GET / HT", read as a frame header, announce a 4.6 MB frame: the
    connection used to wait for it (buffering it) until the idle timeout."""

    async def body() -> None:
        async with waypoint() as wp:
            reader, writer = await asyncio.open_connection("127.0.0.1", wp.port)
            writer.write(RawClient.PREFACE + b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)  # to EOF: closed
            assert answer.endswith(b"a 4670804-byte frame (SETTINGS_MAX_FRAME_SIZE is 16384)")
            assert not wp.h1.transports
            writer.close()

    run(body)


def test_a_huge_header_table_setting_does_not_make_the_waypoint_keep_what_it_sent() -> None:
    """SETTINGS_HEADER_TABLE_SIZE 2 GiB let the waypoint's HPACK encoder keep every
    response header it sent on the connection: here each redirect's Location, 8 kB of
    the client's own path (1.6 MB after 200 requests, growing without end)."""

    async def body() -> None:
        async with waypoint() as wp:
            client = await RawClient.connect(wp.port)
            settings = SettingsFrame(0)
            settings.settings[SettingsFrame.HEADER_TABLE_SIZE] = 2**31
            client.write(bytes(settings.serialize()))
            client.decoder.max_allowed_table_size = 2**31
            for s in range(1, 400, 2):
                client.write(client.headers(s, get(b"/old/%d/" % s + b"a" * 8000)))

            def last(f: Any) -> bool:
                return kind("HeadersFrame")(f) and f.stream_id == 399

            answer = await client.until(last, timeout=10)
            assert answer is not None and answer.headers[b"location"].endswith(
                b"/399/" + b"a" * 8000
            )
            [conn] = list(wp.server.connections)
            assert conn.h2 is not None
            table = conn.h2.h2.encoder.header_table
            assert table.maxsize <= ENCODER_TABLE
            assert sum(32 + len(n) + len(v) for n, v in table.dynamic_entries) <= ENCODER_TABLE
            client.close()

    run(body)


def test_a_backend_huge_header_table_setting_is_capped_too() -> None:
    """The same toward an h2c backend: the requests' headers (the clients' own paths)
    must not pile up in the encoder table of a shared backend connection."""

    async def body() -> None:
        async with waypoint(respond=1, table=2**31) as wp:
            client = await RawClient.connect(wp.port)
            for s in range(1, 200, 2):
                client.write(client.headers(s, get(b"/grpc.Echo/%d/" % s + b"a" * 8000)))

            def last(f: Any) -> bool:
                return kind("DataFrame")(f) and f.stream_id == 199 and "END_STREAM" in f.flags

            assert await client.until(last, timeout=10) is not None
            [up] = wp.server.proxy.h2.clients.values()  # type: ignore[attr-defined]
            table = up.h2.encoder.header_table
            assert len(wp.h2.requests) == 100 and table.maxsize <= ENCODER_TABLE
            assert sum(32 + len(n) + len(v) for n, v in table.dynamic_entries) <= ENCODER_TABLE
            client.close()

    run(body)


def test_a_burst_of_requests_to_a_new_h2c_backend_opens_one_connection() -> None:
    """Concurrent first requests each opened their own backend connection, of which only
    the last was kept: the others stayed open, unused, until the backend closed them."""

    async def body() -> None:
        async with waypoint(respond=1) as wp:
            client = await RawClient.connect(wp.port)
            client.write(*(client.headers(s, get(b"/grpc.Echo/Say")) for s in range(1, 100, 2)))

            def last(f: Any) -> bool:
                return kind("DataFrame")(f) and f.stream_id == 99 and "END_STREAM" in f.flags

            assert await client.until(last, timeout=10) is not None
            assert len(wp.h2.requests) == 50
            assert len(wp.h2.transports) == 1
            client.close()

    run(body)


# --- slow clients ---------------------------------------------------------------------------


def test_a_trickled_request_body_meets_the_http1_body_deadline() -> None:
    """A byte every 0.2 s never looks stalled to the 300 s stream timeout, and held the
    backend connection (one per request toward HTTP/1.1) for as long as it liked."""

    async def body() -> None:
        limits = Limits(body_timeout=0.8, header_timeout=0.4)  # sweeper every 0.1 s
        async with waypoint(limits) as wp:
            client = await Client.connect(wp.port)
            client.h2.send_headers(1, get(b"/h1/x", b"POST"))
            for _ in range(8):  # 1.6 s, never idle 0.2 s
                client.h2.send_data(1, b"x")
                client.send()
                await asyncio.sleep(0.2)
            answer = await client.response(1)
            assert answer["headers"].get(b":status") == b"408", answer
            assert wp.metric("tulle_waypoint_h2_stream_resets_total", reason="slow_body") == 1
            await asyncio.sleep(0.2)
            assert wp.h1.closed == 1  # the backend connection went with it
            client.close()

    run(body)


def test_time_the_waypoint_held_the_body_window_is_not_the_clients_idle_time() -> None:
    front = SimpleNamespace(conn=SimpleNamespace(scheme="http"), h2=None)
    stream = H2Stream(front, 1, RequestBody(BodyKind.CHUNKED, None, 1024))  # type: ignore[arg-type]
    stream.exchange = SimpleNamespace(grpc=False, started=0.0)  # type: ignore[assignment]
    limits = Limits(body_idle_timeout=30.0, body_timeout=300.0)
    stream.hold()  # the backend does not read: the window stays shut
    assert stream.late_body(100.0, limits) == ""
    stream.release()
    assert stream.late_body(100.5, limits) == ""  # the client could not send until now
    assert stream.late_body(131.0, limits) == "request body stalled"
    assert stream.late_body(301.0, limits) == "request body not received in time"


# --- pseudo-headers and fields -------------------------------------------------------------

COOKIE_ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{headers: [{name: cookie, value: "role=user; tenant=a"}]}]
    backendRefs: [{name: app, port: 8080}]
"""


def test_cookie_crumbs_are_one_cookie_line_for_routing_and_backend() -> None:
    """RFC 9113 8.2.3: HTTP/2 splits Cookie into crumbs, which are joined with "; " before
    HTTP/1.1. Otherwise the route is chosen on "a, b" (no match here) while the backend
    sees two Cookie lines (some read only the first)."""

    async def body() -> None:
        empty = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        async with raw_waypoint(
            lambda head, body: empty, route=COOKIE_ROUTES, service="app", h2=True
        ) as (server, backend):
            client = await RawClient.connect(server.ports[0])
            crumbs = [(b"cookie", b"role=user"), (b"x-a", b"1"), (b"cookie", b"tenant=a")]
            client.write(client.headers(1, [*get(b"/"), *crumbs]))
            answer = await client.until(lambda f: kind("HeadersFrame")(f) and f.stream_id == 1)
            assert answer is not None and answer.headers[b":status"] == b"200"
            [got] = backend.received
            cookies = [v for n, v in got.head.headers if n.lower() == b"cookie"]
            assert cookies == [b"role=user; tenant=a"]
            client.close()

    run(body)


TE_ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: app, port: 8080}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: te, value: gzip}]}
"""


@pytest.mark.parametrize("drop_te", [True, False])
def test_a_response_field_http2_forbids_never_breaks_the_connection(
    drop_te: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route may add ``te`` to responses (fine in HTTP/1.1). The h2 library refused to
    send that head, the refusal was swallowed, and the body went out as DATA before any
    HEADERS: a connection error that ended every stream of the client's connection.
    Now ``te`` is dropped; and a head h2 still refuses (``te`` kept) is a stream reset."""
    if not drop_te:  # both guards off: the proxy's hop-by-hop filter and the h2 one
        monkeypatch.setattr("l7proxy.h2stream.DROP", DROP - {b"te"})
        monkeypatch.setattr("l7proxy.forward.HOP_BY_HOP", HOP_BY_HOP - {"te"})

    async def body() -> None:
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        async with raw_waypoint(
            lambda head, body: ok, route=TE_ROUTES, service="app", h2=True
        ) as (server, _):
            client = await Client.connect(server.ports[0])
            client.h2.send_headers(1, get(b"/x"), end_stream=True)
            client.send()
            answer = await client.response(1, timeout=3)
            if drop_te:
                assert answer["headers"].get(b":status") == b"200" and answer["data"] == b"ok"
                assert b"te" not in answer["headers"]
            else:
                assert answer.get("reset") == h2.errors.ErrorCodes.INTERNAL_ERROR
            assert client.goaway() is None and not client.closed
            client.close()

    run(body)


# --- h2c upgrade ----------------------------------------------------------------------------

UPGRADE_ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /public}}]
    backendRefs: [{name: app, port: 8080}]
"""


class H2cUpgradingBackend(asyncio.Protocol):
    """An HTTP/1.1 backend that takes ``Upgrade: h2c`` (as many servers do) and then
    serves HTTP/2 on the connection, recording every path it is asked for."""

    paths: list[bytes]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""
        self.h2: h2.connection.H2Connection | None = None

    def data_received(self, data: bytes) -> None:
        if self.h2 is not None:
            self._h2(data)
            return
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        line, *fields = head.split(b"\r\n")
        self.paths.append(line.split(b" ")[1])
        names = {f.partition(b":")[0].strip().lower(): f for f in fields}
        if b"upgrade" in names and b"h2c" in names[b"upgrade"].lower():
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
            config = h2.config.H2Configuration(client_side=False, header_encoding=None)
            self.h2 = h2.connection.H2Connection(config=config)
            self.h2.initiate_upgrade_connection()
            self.transport.write(self.h2.data_to_send())
            self._h2(rest)
        else:
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            self.buffer = rest

    def _h2(self, data: bytes) -> None:
        assert self.h2 is not None
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                path = dict(event.headers or []).get(b":path", b"")
                self.paths.append(path)
                self.h2.send_headers(event.stream_id, [(b":status", b"200")], end_stream=True)
        self.transport.write(self.h2.data_to_send())


def test_http1_upgrade_to_h2c_is_never_spliced_past_the_routes() -> None:
    """h2c smuggling: a backend that accepts ``Upgrade: h2c`` would get a raw HTTP/2
    connection from the client, whose requests then skip every route (here: a path the
    routes do not serve). The waypoint must not splice it."""

    async def body() -> None:
        paths: list[bytes] = []
        loop = asyncio.get_running_loop()
        backend = await loop.create_server(
            lambda: type("B", (H2cUpgradingBackend,), {"paths": paths})(), "127.0.0.1", 0
        )
        port = backend.sockets[0].getsockname()[1]
        config = gateway_config(
            UPGRADE_ROUTES, {"default/app:8080": [("127.0.0.1", port)]}, services=("app",)
        )
        server = WaypointServer(config)
        [wp_port] = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", wp_port)
            writer.write(
                b"GET /public/x HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
            )
            status = await asyncio.wait_for(reader.readline(), 5)
            client = h2.connection.H2Connection(
                h2.config.H2Configuration(client_side=True, header_encoding=None)
            )
            client.initiate_connection()
            client.send_headers(3, [*get(b"/admin/secrets"), (b"x", b"y")], end_stream=True)
            writer.write(client.data_to_send())
            await asyncio.sleep(0.3)
            assert b"/admin/secrets" not in paths, f"spliced after {status!r}: {paths}"
            # Declined (served over HTTP/1.1, Upgrade not forwarded) or, should a backend
            # switch anyway, refused with 502; never a 101. Either way the connection closes.
            assert not status.startswith(b"HTTP/1.1 101"), status
            assert await asyncio.wait_for(reader.read(), 5) is not None
            writer.close()
        finally:
            await server.close()
            backend.close()

    run(body)
