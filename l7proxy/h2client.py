"""One h2c (prior knowledge) connection to a backend endpoint, shared by concurrent
streams: the h2 state machine fed from the socket, each stream's response head, data and
trailers handed to the exchange that opened it (``h2up``), flow control held while the
client side is not taking the bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
from h2.settings import SettingCodes

from l7proxy.exchange import RawHeaders
from l7proxy.h2head import response_problem
from l7proxy.h2stream import ENCODER_TABLE, STREAM_BUFFER, WINDOW, Sender, unchecked_config
from l7proxy.h2write import Coalescer
from l7proxy.timing import NO_RTT, RttCache, transport_socket
from l7proxy.upstream import Address, UpstreamFailure


class UpStream:
    __slots__ = (
        "head",
        "done",
        "sink",
        "pending",
        "trailers",
        "sender",
        "held",
        "unacked",
        "drained",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, sender: Sender) -> None:
        self.head: asyncio.Future[tuple[int, RawHeaders]] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.sink: Callable[[bytes], None] | None = None
        self.pending: list[bytes] = []
        self.trailers: RawHeaders | None = None
        self.sender = sender
        self.held = False
        """The client side is not taking response bytes: do not reopen the window."""
        self.unacked = 0
        self.drained: Callable[[], None] | None = None
        """Called when the backend's window let the request body buffer drain."""


class H2Client(asyncio.Protocol):
    """One h2c connection to a backend, shared by concurrent streams."""

    def __init__(self, address: Address) -> None:
        self.address = address
        # h2's header checks and normalization off (their cost per call): requests are
        # built from checked heads (h2up), responses checked by h2head.response_problem.
        config = unchecked_config(client_side=True)
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, UpStream] = {}
        self.usable = True
        self.idle_since = 0.0
        self.rtt = NO_RTT  # the kernel's RTT of this connection (timing)
        self.out = Coalescer(self.h2, self._write)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.rtt = RttCache(transport_socket(transport))
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW)
        self.flush()

    def flush(self) -> None:
        """Take what ``h2`` queued; written when this loop iteration ends (``h2write``)."""
        self.out.take()

    def close(self) -> None:
        """Close the connection, after writing what is queued (a GOAWAY)."""
        self.out.take()
        self.out.now()
        if self.transport is not None:
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def open(self, headers: RawHeaders, end_stream: bool) -> tuple[int, UpStream]:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=end_stream)
        stream = UpStream(asyncio.get_running_loop(), Sender(self.h2, sid))
        self.streams[sid] = stream
        self.flush()
        return sid, stream

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(str(exc))  # h2 queued GOAWAY(PROTOCOL_ERROR)
            return
        for event in events:
            stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                problem = response_problem(
                    event.headers or [], trailers=isinstance(event, h2.events.TrailersReceived)
                )
                if problem is not None:  # as h2's own checks did: a connection error
                    try:
                        self.h2.close_connection(h2.errors.ErrorCodes.PROTOCOL_ERROR)
                    except h2.exceptions.ProtocolError:
                        pass  # closed already (the backend's GOAWAY came first)
                    self._protocol_error(f"malformed response: {problem}")
                    return
            if isinstance(event, h2.events.ResponseReceived) and stream is not None:
                headers = event.headers or []
                status = next((int(v) for n, v in headers if n == b":status"), 502)
                stream.head.set_result((status, [(n, v) for n, v in headers if n[:1] != b":"]))
            elif isinstance(event, h2.events.DataReceived):
                size = event.flow_controlled_length or 0
                if stream is None:
                    self.ack(size, event.stream_id)
                    continue
                if event.data:
                    if stream.sink is not None:
                        stream.sink(event.data)  # may hold the stream (client full)
                    else:
                        stream.pending.append(event.data)
                if stream.held or stream.sink is None:
                    stream.unacked += size
                else:
                    self.ack(size, event.stream_id)
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
                    if up.drained is not None and len(up.sender.buffer) <= STREAM_BUFFER:
                        up.drained()
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                table = event.changed_settings.get(SettingCodes.HEADER_TABLE_SIZE)
                if table is not None:  # as toward clients: keep what we send small
                    self.h2.encoder.header_table_size = min(table.new_value, ENCODER_TABLE)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.usable = False
        self.flush()

    def _protocol_error(self, why: str) -> None:
        self.usable = False
        self._fail_all(UpstreamFailure(f"h2 protocol error: {why}", sent=True))
        self.close()

    def ack(self, size: int, stream_id: int) -> None:
        if size:
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass

    def release(self, sid: int, stream: UpStream) -> None:
        """The client side takes bytes again: reopen the window for what it took."""
        stream.held = False
        if stream.unacked and stream.sink is not None:
            size, stream.unacked = stream.unacked, 0
            self.ack(size, sid)
            self.flush()

    def cancel(self, sid: int) -> None:
        """The client gave up on the exchange: reset the backend stream."""
        stream = self.streams.pop(sid, None)
        if stream is not None:
            self._fail(stream, UpstreamFailure("cancelled", sent=True))
        try:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._fail_all(UpstreamFailure(f"h2 backend {self.address} closed", sent=True))

    def _fail_all(self, error: UpstreamFailure) -> None:
        for stream in list(self.streams.values()):
            self._fail(stream, error)
        self.streams.clear()

    @staticmethod
    def _fail(stream: UpStream, error: UpstreamFailure) -> None:
        for future in (stream.head, stream.done):
            if not future.done():
                future.set_exception(error)
                future.exception()


def stream_hold(stream: UpStream) -> Callable[[], None]:
    def hold() -> None:
        stream.held = True

    return hold
