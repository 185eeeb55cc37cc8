"""HTTP/2 cleartext with prior knowledge (the ``h2`` library), both ways.

- ``H2Frontend``: a client connection that opened with the HTTP/2 preface. Each stream
  becomes an ``Exchange`` served by ``Proxy.handle``; the stream is its ``Downstream``.
- ``H2Upstreams``: one multiplexed h2c connection per backend endpoint, for backends
  marked ``h2c`` and for gRPC requests (trailers pass through both ways).

Not done: h2 over TLS (ALPN), extended CONNECT (WebSocket over h2), server push, and
h2c upgrade from HTTP/1.1 (``Upgrade: h2c``), which clients rarely use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from h2.settings import SettingCodes

from l7proxy.exchange import Exchange, RawHeaders, RequestBody
from l7proxy.flows import now_ns
from l7proxy.http.parser import BodyKind
from l7proxy.routing import Forward, UpstreamError
from l7proxy.upstream import Address, Connector, UpstreamFailure

if TYPE_CHECKING:
    from l7proxy.h1 import Http1Connection
    from l7proxy.proxy import Proxy

_DROP = frozenset(
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
_WINDOW = 1 << 20


class _Sender:
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
        self.sender = _Sender(front.h2, stream_id)
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
        out += [(n.lower(), v) for n, v in headers if n.lower() not in _DROP]
        if length is not None and body is not None:
            out.append((b"content-length", b"%d" % length))
        self.started = True
        self.front.send_headers(self.stream_id, out, end_stream=False)

    def flush(self) -> None:
        pass

    def data(self, data: bytes) -> None:
        self.sender.buffer += data
        self.sender.flush()
        if self.sender.buffer and self.pause_cb is not None and len(self.sender.buffer) > _WINDOW:
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
            {SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW, SettingCodes.MAX_CONCURRENT_STREAMS: 256}
        )
        self.h2.increment_flow_control_window(_WINDOW)
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
        except Exception:  # noqa: BLE001 - answered and recorded by handle
            pass
        finally:
            self.streams.pop(stream.stream_id, None)
            self.resumers.pop(stream.stream_id, None)

    def connection_lost(self, exc: Exception | None) -> None:
        for stream in list(self.streams.values()):
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()


# --- upstream ------------------------------------------------------------------------


class _UpStream:
    __slots__ = ("head", "done", "sink", "pending", "trailers", "sender")

    def __init__(self, loop: asyncio.AbstractEventLoop, sender: _Sender) -> None:
        self.head: asyncio.Future[tuple[int, RawHeaders]] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.sink: Callable[[bytes], None] | None = None
        self.pending: list[bytes] = []
        self.trailers: RawHeaders | None = None
        self.sender = sender


class H2Client(asyncio.Protocol):
    """One h2c connection to a backend, shared by concurrent streams."""

    def __init__(self, address: Address) -> None:
        self.address = address
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _UpStream] = {}
        self.usable = True
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_WINDOW)
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def open(self, headers: RawHeaders, end_stream: bool) -> tuple[int, _UpStream]:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=end_stream)
        stream = _UpStream(asyncio.get_running_loop(), _Sender(self.h2, sid))
        self.streams[sid] = stream
        self.flush()
        return sid, stream

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(UpstreamFailure(f"h2 protocol error: {exc}", sent=True))
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and stream is not None:
                headers = event.headers or []
                status = next((int(v) for n, v in headers if n == b":status"), 502)
                stream.head.set_result((status, [(n, v) for n, v in headers if n[:1] != b":"]))
            elif isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if stream is not None and event.data:
                    if stream.sink is not None:
                        stream.sink(event.data)
                    else:
                        stream.pending.append(event.data)
            elif isinstance(event, h2.events.TrailersReceived) and stream is not None:
                stream.trailers = list(event.headers or [])
            elif isinstance(event, h2.events.StreamEnded) and stream is not None:
                self.streams.pop(event.stream_id, None)
                if not stream.done.done():
                    stream.done.set_result(None)
            elif isinstance(event, h2.events.StreamReset) and stream is not None:
                self.streams.pop(event.stream_id, None)
                refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                self._fail(stream, UpstreamFailure("backend reset the stream", sent=not refused))
            elif isinstance(event, h2.events.WindowUpdated):
                for up in list(self.streams.values()):
                    up.sender.flush()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.usable = False
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._fail_all(UpstreamFailure(f"h2 backend {self.address} closed", sent=True))

    def _fail_all(self, error: UpstreamFailure) -> None:
        for stream in list(self.streams.values()):
            self._fail(stream, error)
        self.streams.clear()

    @staticmethod
    def _fail(stream: _UpStream, error: UpstreamFailure) -> None:
        for future in (stream.head, stream.done):
            if not future.done():
                future.set_exception(error)
                future.exception()


class H2Upstreams:
    """h2c connections by endpoint: one each, reopened when closed or after GOAWAY."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.clients: dict[Address, H2Client] = {}

    async def client(self, address: Address) -> H2Client:
        client = self.clients.get(address)
        if client is None or not client.usable:
            client = await self.connector.connect(address, lambda: H2Client(address))
            self.clients[address] = client
        return client

    async def forward(self, proxy: Proxy, ex: Exchange, fwd: Forward, down: object) -> int:
        """One try over h2c (connect failures retried by the caller's policy)."""
        from l7proxy.proxy import Failed

        request = fwd.request
        client = await self.client(proxy.pick(fwd.backend))
        headers = [
            (b":method", request.method.encode()),
            (b":scheme", b"http"),
            (b":authority", request.authority.encode("latin-1")),
            (b":path", request.target.encode("latin-1")),
        ]
        headers += [
            (n.lower().encode("latin-1"), v.encode("latin-1"))
            for n, v in request.headers
            if n.lower().encode("latin-1") not in _DROP and n.lower() != "te"
        ]
        if ex.grpc:
            headers.append((b"te", b"trailers"))
        headers.append((b"x-forwarded-for", ex.client[0].encode()))
        body = ex.body
        sid, stream = client.open(headers, end_stream=body.complete and not body.size)
        if body.size or not body.complete:
            stream.sender.buffer += b"".join(body.chunks)

            def more(data: bytes) -> None:
                stream.sender.buffer += data
                stream.sender.flush()
                client.flush()

            def finish() -> None:
                stream.sender.ending = True
                stream.sender.flush()
                client.flush()

            if body.complete:
                finish()
            else:
                body.attach(more, finish)
            stream.sender.flush()
            client.flush()
        try:
            status, resp_headers = await stream.head
            down.head(status, b"", resp_headers, None, None)  # type: ignore[attr-defined]
            stream.sink = down.data  # type: ignore[attr-defined]
            for piece in stream.pending:
                down.data(piece)  # type: ignore[attr-defined]
            down.flush()  # type: ignore[attr-defined]
            await stream.done
        except UpstreamFailure as exc:
            if down.started:  # type: ignore[attr-defined]
                down.abort()  # type: ignore[attr-defined]
                return 502
            error = UpstreamError.RESET_AFTER_SEND if exc.sent else UpstreamError.REFUSED_STREAM
            raise Failed(502, str(exc), error) from exc
        finally:
            body.detach()
        down.end(stream.trailers)  # type: ignore[attr-defined]
        return status

    def expire(self, now: float, idle: float) -> None:
        for address, client in list(self.clients.items()):
            if not client.streams and not client.usable:
                del self.clients[address]

    def close(self) -> None:
        for client in self.clients.values():
            if client.transport is not None:
                client.transport.close()
        self.clients.clear()
