"""HTTP/2 cleartext with prior knowledge (the ``h2`` library), both ways.

- ``H2Frontend``: a client connection that opened with the HTTP/2 preface. Each stream
  becomes an ``Exchange`` served by ``Proxy.handle``; the stream is its ``Downstream``.
- ``h2up.H2Upstreams``: one multiplexed h2c connection per backend endpoint, for
  backends marked ``h2c`` and for gRPC requests (trailers pass through both ways).

Resource limits (``config.Limits.h2_*``, listed in SERVER.md): heads checked (``h2head``),
streams capped, request body acknowledged only once passed on, responses paced by the
client's windows (a connection WINDOW_UPDATE retries only streams ``parked`` on it), a
write-buffer ceiling, frame budgets (``h2limits``), stalled and slow streams reset
(``h2guard``: what happens when a limit is hit).

Not done: h2 over TLS (ALPN), extended CONNECT (WebSocket over h2), server push, and
h2c upgrade from HTTP/1.1 (``Upgrade: h2c``), which clients rarely use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from h2.settings import SettingCodes, Settings

from l7proxy import h2limits
from l7proxy.exchange import Exchange, RawHeaders, RequestBody
from l7proxy.flows import now_ns
from l7proxy.h2guard import H2Guard
from l7proxy.h2head import Malformed, Unsupported, parse_request, unsendable
from l7proxy.h2stream import ENCODER_TABLE, H2Stream, unchecked_config
from l7proxy.h2write import Coalescer
from l7proxy.http.parser import BodyKind

if TYPE_CHECKING:
    from l7proxy.h1 import Http1Connection
    from l7proxy.proxy import Proxy

log = logging.getLogger("tulle.waypoint")
Codes = h2.errors.ErrorCodes
MIN_WINDOW = 65_535  # a smaller window could not apply before the client's SETTINGS ACK


class H2Frontend(H2Guard, asyncio.Protocol):
    """One client connection's HTTP/2 session; limits enforced by ``H2Guard``."""

    def __init__(self, conn: Http1Connection) -> None:
        self.conn = conn
        self.proxy: Proxy = conn.proxy
        self.limits = limits = self.proxy.limits
        self.stats = self.proxy.h2.stats  # type: ignore[attr-defined]
        self.window = max(limits.h2_window, MIN_WINDOW)
        # h2's header checks and normalization off (their cost per call): request heads
        # are checked by h2head, responses built from checked heads (h2head, the HTTP/1.1
        # parser, validated route filters) with the fields normalized by h2stream.fields.
        config = unchecked_config(client_side=False)
        self.h2: h2.connection.H2Connection = h2.connection.H2Connection(config=config)
        # In force from the first SETTINGS frame (h2 would apply updates only on ACK).
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: self.window,
                SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_bytes,
            },
        )
        self.h2.decoder.max_header_list_size = limits.max_header_bytes
        self.h2.initiate_connection()
        if self.window > MIN_WINDOW:
            self.h2.increment_flow_control_window(self.window - MIN_WINDOW)
        self.streams: dict[int, H2Stream] = {}
        self.draining: dict[int, H2Stream] = {}
        """Exchanges done whose last response bytes wait for the client's window."""
        self.kept = 0
        """Request body bytes kept for retries across the streams (``h2_max_kept_bodies``)."""
        self.resumers: dict[int, Callable[[], None] | None] = {}
        self.parked: dict[int, H2Stream] = {}
        """Streams whose response waits for the connection window (not their own), in
        turn: the only ones a connection WINDOW_UPDATE retries, so its cost is what moves."""
        now = asyncio.get_running_loop().time()
        self.budgets = h2limits.Budgets(limits, self.h2.max_inbound_frame_size, now)
        self.writable = True
        self.closed = False
        self.shut = False  # our side sent FIN (lingering close)
        self.out = Coalescer(self.h2, self._write)
        conn.pause_source(self._write_paused, self._write_resumed)
        self.flush()

    # --- output ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Take what ``h2`` queued; written when this loop iteration ends (``h2write``)."""
        size = self.out.take()
        if size:
            self.budgets.updates.give(size >> 10)  # a WINDOW_UPDATE per KiB sent is fair

    def flush_now(self) -> None:
        """Write everything queued now: before a close or FIN nothing may stay held."""
        self.flush()
        self.out.now()

    def _write(self, data: bytes) -> None:
        transport = self.conn.transport
        if transport is not None and self.conn.mode != "closed" and not self.shut:
            transport.write(data)
            if transport.get_write_buffer_size() > self.limits.h2_max_write_buffer:
                self._give_up(h2limits.WRITE_BUFFER, "client does not read its responses")

    def send_headers(self, stream_id: int, headers: RawHeaders, *, end_stream: bool) -> bool:
        """False if the head was refused (a field HTTP/2 forbids: ``h2head.unsendable``,
        or ``h2`` itself): the stream is reset, as DATA must not follow a head never sent."""
        sent = True
        problem = unsendable(headers)
        if problem is not None:
            log.warning("waypoint: h2 stream %d: response head refused: %s", stream_id, problem)
            return False
        try:
            self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            pass
        except h2.exceptions.ProtocolError:
            log.warning("waypoint: h2 stream %d: response head refused", stream_id, exc_info=True)
            sent = False
        self.flush()
        return sent

    def reset(self, stream_id: int, code: Codes = Codes.INTERNAL_ERROR) -> None:
        try:
            self.h2.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.flush()

    def ack(self, count: int, stream_id: int) -> None:
        """Reopen the window for ``count`` bytes passed on (or dropped)."""
        try:
            self.h2.acknowledge_received_data(count, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass

    def _write_paused(self) -> None:
        self.writable = False

    def _write_resumed(self) -> None:
        self.writable = True
        self._wake_all()
        self.flush()

    def move(self, stream: H2Stream) -> None:
        """Send what the windows allow of ``stream``; park it if the connection's stopped it."""
        sender, sid = stream.sender, stream.stream_id
        sender.flush()
        self.parked.pop(sid, None)
        if sender.buffer and not sender.closed and self.h2.outbound_flow_control_window <= 0:
            self.parked[sid] = stream  # at the back: the connection window goes round

    # --- input ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        now = asyncio.get_running_loop().time()
        over = self.budgets.over(data, now)
        if over is not None:
            reason, detail = over
            oversized = reason == h2limits.FRAME_SIZE  # RFC 9113 4.2
            self._calm(
                reason, detail, Codes.FRAME_SIZE_ERROR if oversized else Codes.ENHANCE_YOUR_CALM
            )
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.TooManyStreamsError as exc:
            self._give_up(h2limits.TOO_MANY_STREAMS, str(exc))
            return
        except h2.exceptions.ProtocolError as exc:
            self._give_up(h2limits.PROTOCOL_ERROR, str(exc))
            return
        for event in events:
            if self.closed:
                return  # a limit closed the connection while handling this read
            if isinstance(event, h2.events.RequestReceived):
                self._request(event.stream_id, event.headers or [], bool(event.stream_ended))
            elif isinstance(event, h2.events.DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None and event.data:
                    stream.body_at = now
                self._data(event.stream_id, event.data or b"", event.flow_controlled_length or 0)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body.end()
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                self.draining.pop(event.stream_id, None)
                self.parked.pop(event.stream_id, None)
                if stream is not None:
                    stream.sender.closed = True
                    if stream.task is not None:
                        stream.task.cancel()  # the exchange resets or aborts its upstream
                if not event.remote_reset:  # h2 reset it: a stream error the client caused
                    self.stats.reset("protocol")
                    self._provoked()
            elif isinstance(event, h2.events.WindowUpdated):
                self._window(event.stream_id)
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                changed = event.changed_settings
                if SettingCodes.HEADER_TABLE_SIZE in changed:
                    self.h2.encoder.header_table_size = min(
                        changed[SettingCodes.HEADER_TABLE_SIZE].new_value, ENCODER_TABLE
                    )
                if SettingCodes.INITIAL_WINDOW_SIZE in changed:
                    self._wake_all()  # every stream window moved (RFC 9113 6.9.2)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.flush_now()  # what was held goes out first (h2 drops what it queued)
                self.conn._close()
        self.flush()

    def _data(self, stream_id: int, data: bytes, flow_controlled: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            self.ack(flow_controlled, stream_id)  # answered already: drop, keep the window
            return
        if data:
            body = stream.body
            body.feed(data)  # passed on, or kept (which may hold the stream)
            if body.kept:
                stream.kept += len(data)
                self.kept += len(data)
                if self.kept > self.limits.h2_max_kept_bodies:
                    if body.sink is not None:
                        body.kept, body.chunks = False, []  # already passed on: no retry copy
                        self.unkeep(stream)
                    else:  # nowhere to send it yet: keep it until attach, no retry copy
                        body.keep_copy = False
            elif stream.kept:
                self.unkeep(stream)
        if stream.held:
            stream.unacked += flow_controlled
        elif flow_controlled:
            self.ack(flow_controlled, stream_id)

    def unkeep(self, stream: H2Stream) -> None:
        self.kept -= stream.kept
        stream.kept = 0

    def _window(self, stream_id: int) -> None:
        """A window opened (``stream_id`` 0: the connection's): send what can move now."""
        if not self.writable:
            return
        if stream_id == 0:
            targets = list(self.parked.values())
        else:
            one = self.streams.get(stream_id) or self.draining.get(stream_id)
            targets = [one] if one is not None else []
        for stream in targets:
            if stream_id == 0 and self.h2.outbound_flow_control_window <= 0:
                break
            self._moved(stream)

    def _wake_all(self) -> None:
        """Any stream may move: the socket drained, or every stream window changed."""
        if self.writable:
            for stream in [*self.streams.values(), *self.draining.values()]:
                self._moved(stream)

    def _moved(self, stream: H2Stream) -> None:
        self.move(stream)
        if stream.stream_id in self.draining:
            if stream.sender.closed:
                self._done(stream)
        elif not stream.sender.buffer:
            resume = self.resumers.get(stream.stream_id)
            if resume is not None:
                resume()

    def _request(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        try:
            head = parse_request(headers, max_headers=self.limits.max_headers)
        except Malformed as exc:
            self._malformed(stream_id, str(exc))
            return
        except Unsupported as exc:
            refused = H2Stream(self, stream_id, RequestBody(BodyKind.NONE, None, 0))
            refused.body.complete = ended
            refused.local(405, [(b"content-type", b"text/plain")], f"{exc}\n".encode())
            if refused.sender.closed:
                self._done(refused)
            else:
                self.draining[stream_id] = refused
            return
        length = head.content_length
        kind = (
            BodyKind.NONE if ended else BodyKind.LENGTH if length is not None else BodyKind.CHUNKED
        )
        body = RequestBody(kind, length, self.proxy.limits.max_buffered_body)
        stream = H2Stream(self, stream_id, body)
        if not ended:
            # Nothing is passed on before the proxy attaches a sink: hold the window.
            body.pause, body.resume = stream.hold, stream.release
            stream.hold()
        grpc = any(
            n == b"content-type" and v.startswith(b"application/grpc") for n, v in head.headers
        )
        loop = asyncio.get_running_loop()
        ex = Exchange(
            head.method,
            head.path,
            head.authority,
            head.headers,
            body,
            self.conn.parent,
            self.conn.client,
            self.conn.local_addr,
            started=loop.time(),
            started_ns=now_ns() if self.proxy.flows.enabled else 0,
            grpc=grpc,
        )
        stream.mark = (0, ex.started)
        stream.exchange, stream.body_at = ex, ex.started
        self.streams[stream_id] = stream
        stream.task = loop.create_task(self._serve(ex, stream))

    async def _serve(self, ex: Exchange, stream: H2Stream) -> None:
        try:
            await self.proxy.handle(ex, stream)
        except Exception:
            log.exception("waypoint: h2 stream %d failed", stream.stream_id)
            if not stream.started:
                stream.local(500, [], b"internal error\n")
            else:
                stream.abort()
        finally:
            sid = stream.stream_id
            self.streams.pop(sid, None)
            self.resumers.pop(sid, None)
            self.unkeep(stream)
            if stream.unacked:
                self.ack(stream.unacked, sid)  # the connection window comes back
                stream.unacked = 0
            if not stream.started and not stream.sender.closed:
                stream.abort()  # no answer at all: never leave the client waiting
            if stream.sender.closed or self.closed:
                self._done(stream)
            else:
                self.draining[sid] = stream  # the response waits for the client's window
            self.conn.idle_since = asyncio.get_running_loop().time()
            self.flush()

    def _done(self, stream: H2Stream) -> None:
        """The response is all out: a client still sending the body is told to stop."""
        self.draining.pop(stream.stream_id, None)
        self.parked.pop(stream.stream_id, None)
        if not stream.body.complete and not self.closed:
            self.reset(stream.stream_id, Codes.NO_ERROR)  # RFC 9113 8.1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_all()
