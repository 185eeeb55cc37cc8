"""One HBONE connection: HTTP/2 over an established TLS transport, and its CONNECT streams.

Both ends use `TunnelConnection`: the receiving one hands each new stream's head to
``on_request``; the sending one opens streams with `open_stream`. A `Stream` is a byte pipe
with HTTP/2 flow control as its backpressure: received DATA is acknowledged (the peer's
window reopened) only when the reader asks for the next chunk, that is after the previous
one was written on and drained, so at most one window (STREAM_WINDOW) is buffered per
stream; writes wait for the peer's window and for the transport's high-water mark.

Windows follow ztunnel's order of magnitude (4 MiB per stream, 16 MiB per connection): a
64 KiB window caps one stream at 64 KiB per round trip. Frames up to 64 KiB cut the
per-frame Python work of bulk transfers fourfold against the 16 KiB default.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from h2.settings import SettingCodes, Settings

Fields = list[tuple[bytes, bytes]]
STREAM_WINDOW = 4 * 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
MAX_FRAME = 64 * 1024
DEFAULT_MAX_STREAMS = 100
MAX_HEADER_LIST = 16 * 1024


class StreamReset(ConnectionError):
    """The stream was reset (by the peer, or the connection ended under it)."""


class Stream:
    """One CONNECT stream's bytes, both ways."""

    def __init__(self, conn: TunnelConnection, stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.chunks: deque[tuple[bytes, int]] = deque()
        self.remote_ended = False
        self.local_ended = False
        self.error: str | None = None
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.response: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._unacked = 0

    @property
    def done(self) -> bool:
        return self.error is not None or (self.remote_ended and self.local_ended)

    async def read(self) -> bytes:
        """The next chunk; b"" once the peer ended the stream. Raises StreamReset."""
        if self._unacked:
            self.conn.acknowledge(self.id, self._unacked)
            self._unacked = 0
        while not self.chunks:
            if self.error is not None:
                raise StreamReset(self.error)
            if self.remote_ended:
                return b""
            self.readable.clear()
            await self.readable.wait()
        data, flow = self.chunks.popleft()
        self._unacked = flow
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.error is not None:
                raise StreamReset(self.error)
            size = self.conn.sendable(self.id, len(view))
            if size <= 0:
                self.writable.clear()
                await self.writable.wait()
                continue
            self.conn.send_data(self.id, bytes(view[:size]))
            view = view[size:]
            await self.conn.drained()

    def end(self) -> None:
        if not self.local_ended and self.error is None:
            self.local_ended = True
            self.conn.end_stream(self)

    def reset(self, code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        if self.error is None:
            self.fail(f"reset locally ({code})")
            self.conn.reset_stream(self, code)

    def fail(self, why: str) -> None:
        if self.error is None:
            self.error = why
        self.readable.set()
        self.writable.set()
        if not self.response.done():
            self.response.set_exception(StreamReset(why))
            self.response.exception()  # retrieved: nobody may be waiting for it


class TunnelConnection(asyncio.Protocol):
    """HTTP/2 over one TLS transport; ``on_request(stream, fields)`` on the receiving end."""

    def __init__(
        self,
        client_side: bool,
        on_request: Callable[[Stream, Fields], None] | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        # Inbound header validation is connection-fatal in h2; the receiving end validates
        # heads itself (connecthead.py) and refuses only the stream.
        config = h2.config.H2Configuration(
            client_side=client_side,
            header_encoding=None,
            validate_inbound_headers=client_side,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.client_side = client_side
        self.on_request = on_request
        self.max_streams = max_streams
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Stream] = {}
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()  # peer's SETTINGS seen
        self.closed: asyncio.Future[None] = loop.create_future()
        self.going_away = False
        self._writable = asyncio.Event()
        self._writable.set()
        self.idle_since = loop.time()
        self.streams_opened = 0
        self.on_close: Callable[[TunnelConnection], None] | None = None
        self.on_made: Callable[[TunnelConnection], bool] | None = None
        """Judges the peer once TLS is up, before any HTTP/2 byte is read; False aborts."""
        self.refused = False
        self.local_serial = 0  # the serial of the certificate this end presented
        self.peer_serial = 0  # ... and of the peer's
        self.roots: tuple[object, ...] = ()  # the bundle's roots the peer was verified under
        self.peer_id = ""  # the peer's SPIFFE ID (after the SPIFFE check)
        self.local_id = ""  # server side: the identity presented on request by SNI ("": none)
        self.lost_exc: Exception | None = None

    # --- asyncio ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        if self.on_made is not None and not self.on_made(self):
            self.refused = True
            self.transport.abort()
            return
        self.h2.local_settings = Settings(
            client=self.client_side,
            initial_values={
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_FRAME_SIZE: MAX_FRAME,
                SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
                SettingCodes.ENABLE_PUSH: 0,
            },
        )
        # Settings built whole are current at once; h2 reads the frame limit only on ACK.
        self.h2.max_inbound_frame_size = MAX_FRAME
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._flush()
            self.abort(f"HTTP/2 protocol error: {exc}")
            return
        for event in events:
            self._handle(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"tunnel connection lost: {exc}" if exc else "tunnel connection closed"
        for stream in list(self.streams.values()):
            stream.fail(why)
        self.streams.clear()
        self._writable.set()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
            self.ready.exception()  # retrieved: nobody may be waiting
        if not self.closed.done():
            self.closed.set_result(None)
        self.lost_exc = exc
        if self.on_close is not None:
            self.on_close(self)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # --- h2 events ------------------------------------------------------------------

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None or stream.error is not None:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                return
            stream.chunks.append((event.data, event.flow_controlled_length))
            stream.readable.set()
        elif isinstance(event, h2.events.WindowUpdated):
            targets = (
                self.streams.values()
                if event.stream_id == 0
                else [s for s in [self.streams.get(event.stream_id)] if s]
            )
            for stream in targets:
                stream.writable.set()
        elif isinstance(event, h2.events.RequestReceived):
            stream = Stream(self, event.stream_id)
            self.streams[event.stream_id] = stream
            self.streams_opened += 1
            if event.stream_ended:
                stream.remote_ended = True
            if self.on_request is not None:
                self.on_request(stream, list(event.headers))
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.response.done():
                status = dict(event.headers).get(b":status", b"0")
                stream.response.set_result(int(status) if status.isdigit() else 0)
        elif isinstance(event, (h2.events.StreamEnded, h2.events.TrailersReceived)):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.remote_ended = True
                stream.readable.set()
                self._forget(stream)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.fail(f"reset by the peer ({event.error_code!r})")
                self._note_idle()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if not self.ready.done():
                self.ready.set_result(None)
            for stream in self.streams.values():
                stream.writable.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.going_away = True
            if not self.streams and self.transport is not None:
                self.transport.close()

    # --- used by streams ------------------------------------------------------------

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _forget(self, stream: Stream) -> None:
        if stream.done and self.streams.get(stream.id) is stream:
            del self.streams[stream.id]
            self._note_idle()

    def _note_idle(self) -> None:
        if not self.streams:
            self.idle_since = asyncio.get_running_loop().time()
            if self.going_away and self.transport is not None:
                self.transport.close()

    def acknowledge(self, stream_id: int, size: int) -> None:
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except h2.exceptions.StreamClosedError:
            return
        self._flush()

    def sendable(self, stream_id: int, want: int) -> int:
        try:
            window = self.h2.local_flow_control_window(stream_id)
        except h2.exceptions.StreamClosedError:
            raise StreamReset("stream closed") from None
        return min(want, window, self.h2.max_outbound_frame_size)

    def send_data(self, stream_id: int, data: bytes) -> None:
        self.h2.send_data(stream_id, data)
        self._flush()

    async def drained(self) -> None:
        if not self._writable.is_set():
            await self._writable.wait()
        if self.transport is None or self.transport.is_closing():
            raise StreamReset("tunnel connection closed")

    def end_stream(self, stream: Stream) -> None:
        try:
            self.h2.end_stream(stream.id)
        except h2.exceptions.StreamClosedError:
            return
        self._flush()
        self._forget(stream)

    def reset_stream(self, stream: Stream, code: int) -> None:
        self.streams.pop(stream.id, None)
        try:
            self.h2.reset_stream(stream.id, code)
        except h2.exceptions.StreamClosedError:
            pass
        self._flush()
        self._note_idle()

    # --- the two ends -----------------------------------------------------------------

    def capacity(self) -> int:
        """Streams this connection may still open (the peer's MAX_CONCURRENT_STREAMS)."""
        if self.going_away or self.transport is None or self.transport.is_closing():
            return 0
        return self.h2.remote_settings.max_concurrent_streams - self.h2.open_outbound_streams

    def open_stream(self, fields: Fields) -> Stream:
        stream_id = self.h2.get_next_available_stream_id()
        stream = Stream(self, stream_id)
        self.streams[stream_id] = stream
        self.streams_opened += 1
        self.h2.send_headers(stream_id, fields)
        self._flush()
        return stream

    def respond(self, stream: Stream, status: int, end: bool = False) -> None:
        try:
            self.h2.send_headers(stream.id, [(b":status", str(status).encode())], end_stream=end)
        except h2.exceptions.StreamClosedError:
            return
        if end:
            stream.local_ended = True
            self._forget(stream)
        self._flush()

    def abort(self, why: str) -> None:
        for stream in list(self.streams.values()):
            stream.fail(why)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """GOAWAY, then close: open streams are ended by the peer's view of the GOAWAY."""
        if self.transport is None or self.transport.is_closing():
            return
        self.h2.close_connection()
        self._flush()
        self.transport.close()
