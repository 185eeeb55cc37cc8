"""HTTP/2 cleartext with prior knowledge (the ``h2`` library), both ways.

- ``H2Frontend``: a client connection that opened with the HTTP/2 preface. Each stream
  becomes an ``Exchange`` served by ``Proxy.handle``; the stream is its ``Downstream``.
- ``h2up.H2Upstreams``: one multiplexed h2c connection per backend endpoint, for
  backends marked ``h2c`` and for gRPC requests (trailers pass through both ways).

Not done: h2 over TLS (ALPN), extended CONNECT (WebSocket over h2), server push, and
h2c upgrade from HTTP/1.1 (``Upgrade: h2c``), which clients rarely use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from h2.settings import SettingCodes

from l7proxy.exchange import Exchange, RawHeaders, RequestBody
from l7proxy.flows import now_ns
from l7proxy.http.parser import BodyKind
from l7proxy.upstream import UpstreamFailure

if TYPE_CHECKING:
    from l7proxy.h1 import Http1Connection
    from l7proxy.proxy import Proxy

log = logging.getLogger("tulle.waypoint")
DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
WINDOW = 1 << 20


class Sender:
    """Outbound DATA for one stream, paced by HTTP/2 flow control."""

    __slots__ = ("conn", "stream_id", "buffer", "ending", "trailers", "closed")

    def __init__(self, conn: h2.connection.H2Connection, stream_id: int) -> None:
        self.conn: h2.connection.H2Connection = conn
        self.stream_id = stream_id
        self.buffer = bytearray()
        self.ending = False
        self.trailers: RawHeaders | None = None
        self.closed = False

    def flush(self) -> None:
        conn, sid = self.conn, self.stream_id
        if self.closed:
            return
        try:
            while self.buffer:
                size = min(
                    conn.local_flow_control_window(sid),
                    conn.max_outbound_frame_size,
                    len(self.buffer),
                )
                if size <= 0:
                    return
                conn.send_data(sid, bytes(self.buffer[:size]))
                del self.buffer[:size]
            if self.ending:
                self.closed = True
                if self.trailers:
                    conn.send_headers(sid, self.trailers, end_stream=True)
                else:
                    conn.send_data(sid, b"", end_stream=True)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.closed = True


class _Stream:
    """One client stream: the ``Downstream`` of its exchange."""

    protocol = "HTTP/2"

    def __init__(self, front: H2Frontend, stream_id: int, body: RequestBody) -> None:
        self.front = front
        self.stream_id = stream_id
        self.body = body
        self.scheme = front.conn.scheme
        self.started = False
        self.sender = Sender(front.h2, stream_id)
        self.task: asyncio.Task[None] | None = None
        self.pause_cb: Callable[[], None] | None = None

    def local(self, status: int, headers: RawHeaders, body: bytes, *, close: bool = False) -> None:
        self.head(status, b"", list(headers), BodyKind.LENGTH, len(body))
        self.data(body)
        self.end()

    def head(
        self,
        status: int,
        reason: bytes,
        headers: RawHeaders,
        body: BodyKind | None,
        length: int | None,
    ) -> None:
        out = [(b":status", b"%d" % status)]
        out += [(n.lower(), v) for n, v in headers if n.lower() not in DROP]
        if length is not None and body is not None:
            out.append((b"content-length", b"%d" % length))
        self.started = True
        self.front.send_headers(self.stream_id, out, end_stream=False)

    def flush(self) -> None:
        pass

    def data(self, data: bytes) -> None:
        self.sender.buffer += data
        self.sender.flush()
        if self.sender.buffer and self.pause_cb is not None and len(self.sender.buffer) > WINDOW:
            self.pause_cb()
        self.front.flush()

    def end(self, trailers: RawHeaders | None = None) -> None:
        self.sender.ending = True
        if trailers:
            self.sender.trailers = [(n.lower(), v) for n, v in trailers]
        self.sender.flush()
        self.front.flush()

    def abort(self) -> None:
        self.front.reset(self.stream_id)

    def continue_(self) -> None:
        pass

    def tunnel(
        self,
        write_upstream: Callable[[bytes], None],
        close_upstream: Callable[[], None],
    ) -> Callable[[bytes], None]:
        raise UpstreamFailure("Upgrade over HTTP/2 is not supported", sent=True)

    def pause_source(
        self, pause: Callable[[], None] | None, resume: Callable[[], None] | None
    ) -> None:
        self.pause_cb = pause
        self.front.resumers[self.stream_id] = resume


class H2Frontend(asyncio.Protocol):
    def __init__(self, conn: Http1Connection) -> None:
        self.conn = conn
        self.proxy: Proxy = conn.proxy
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2: h2.connection.H2Connection = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        self.h2.update_settings(
            {SettingCodes.INITIAL_WINDOW_SIZE: WINDOW, SettingCodes.MAX_CONCURRENT_STREAMS: 256}
        )
        self.h2.increment_flow_control_window(WINDOW)
        self.streams: dict[int, _Stream] = {}
        self.resumers: dict[int, Callable[[], None] | None] = {}
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.conn.transport is not None and self.conn.mode != "closed":
            self.conn.transport.write(data)

    def send_headers(self, stream_id: int, headers: RawHeaders, *, end_stream: bool) -> None:
        try:
            self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.flush()

    def reset(self, stream_id: int) -> None:
        try:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.conn._close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._request(event.stream_id, event.headers or [], bool(event.stream_ended))
            elif isinstance(event, h2.events.DataReceived):
                stream = self.streams.get(event.stream_id)
                if event.flow_controlled_length:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if stream is not None and event.data:
                    stream.body.feed(event.data)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body.end()
            elif isinstance(event, h2.events.StreamReset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None and stream.task is not None:
                    stream.task.cancel()
            elif isinstance(event, h2.events.WindowUpdated):
                self._window(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.conn._close()
        self.flush()

    def _window(self, stream_id: int) -> None:
        targets = (
            list(self.streams.values())
            if stream_id == 0
            else [s for s in (self.streams.get(stream_id),) if s is not None]
        )
        for stream in targets:
            stream.sender.flush()
            if not stream.sender.buffer:
                resume = self.resumers.get(stream.stream_id)
                if resume is not None:
                    resume()

    def _request(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        pseudo: dict[bytes, bytes] = {}
        regular: RawHeaders = []
        for name, value in headers:
            if name[:1] == b":":
                pseudo[name] = value
            else:
                regular.append((name, value))
        authority = pseudo.get(b":authority") or next((v for n, v in regular if n == b"host"), b"")
        method = pseudo.get(b":method", b"GET").decode("latin-1")
        length = next((int(v) for n, v in regular if n == b"content-length" and v.isdigit()), None)
        kind = (
            BodyKind.NONE if ended else BodyKind.LENGTH if length is not None else BodyKind.CHUNKED
        )
        body = RequestBody(kind, length, self.proxy.limits.max_buffered_body)
        stream = _Stream(self, stream_id, body)
        if not authority or b":path" not in pseudo:
            stream.local(400, [], b"missing :authority or :path\n")
            return
        grpc = any(n == b"content-type" and v.startswith(b"application/grpc") for n, v in regular)
        loop = asyncio.get_running_loop()
        ex = Exchange(
            method,
            pseudo[b":path"].decode("latin-1"),
            authority.decode("latin-1").lower(),
            regular,
            body,
            self.conn.parent,
            self.conn.client,
            self.conn.local_addr,
            started=loop.time(),
            started_ns=now_ns() if self.proxy.flows.enabled else 0,
            grpc=grpc,
        )
        self.streams[stream_id] = stream
        stream.task = loop.create_task(self._serve(ex, stream))

    async def _serve(self, ex: Exchange, stream: _Stream) -> None:
        try:
            await self.proxy.handle(ex, stream)
        except Exception:
            log.exception("waypoint: h2 stream %d failed", stream.stream_id)
            if not stream.started:
                stream.local(500, [], b"internal error\n")
            else:
                stream.abort()
        finally:
            self.streams.pop(stream.stream_id, None)
            self.resumers.pop(stream.stream_id, None)
            self.conn.idle_since = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        for stream in list(self.streams.values()):
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
