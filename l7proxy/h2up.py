"""HTTP/2 cleartext (prior knowledge) toward backends: one multiplexed ``H2Client`` per
endpoint, opened through the one ``Connector``, for backends marked ``h2c`` and for gRPC
requests. Response trailers (``grpc-status``) are handed to the client's ``end``.

Flow control end to end: response DATA is acknowledged to the backend only once the
client side took it (``Downstream.pause_source``), and the request body is paused at its
source while the backend's window is shut. A client that cancels its stream (or goes
away) makes the exchange reset the backend stream (CANCEL), so the backend stops too.

Not done: retries over h2c (a single try; connection failures answer 503), and a bound
on concurrent streams per connection beyond the backend's own SETTINGS.
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

from gatewayapi import Forward, UpstreamError
from l7proxy.exchange import Downstream, Exchange, RawHeaders
from l7proxy.h2limits import H2Stats
from l7proxy.h2stream import DROP, ENCODER_TABLE, STREAM_BUFFER, WINDOW, Sender
from l7proxy.timing import NO_RTT, RttCache, now, transport_socket
from l7proxy.upstream import Address, Connector, UpstreamFailure
from l7proxy.via import DIRECT, Via

if TYPE_CHECKING:
    from l7proxy.proxy import Proxy


class _UpStream:
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
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _UpStream] = {}
        self.usable = True
        self.idle_since = 0.0
        self.rtt = NO_RTT  # the kernel's RTT of this connection (timing)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.rtt = RttCache(transport_socket(transport))
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW)
        self.flush()

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def open(self, headers: RawHeaders, end_stream: bool) -> tuple[int, _UpStream]:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=end_stream)
        stream = _UpStream(asyncio.get_running_loop(), Sender(self.h2, sid))
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

    def ack(self, size: int, stream_id: int) -> None:
        if size:
            try:
                self.h2.acknowledge_received_data(size, stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                pass

    def release(self, sid: int, stream: _UpStream) -> None:
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
    def _fail(stream: _UpStream, error: UpstreamFailure) -> None:
        for future in (stream.head, stream.done):
            if not future.done():
                future.set_exception(error)
                future.exception()


def _retrieve(future: asyncio.Future[H2Client]) -> None:
    if not future.cancelled():
        future.exception()


def stream_hold(stream: _UpStream) -> Callable[[], None]:
    def hold() -> None:
        stream.held = True

    return hold


class H2Upstreams:
    """h2c connections by endpoint: one each, reopened when closed or after GOAWAY."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.clients: dict[tuple[Address, Via], H2Client] = {}
        self.connecting: dict[tuple[Address, Via], asyncio.Future[H2Client]] = {}
        """Connects under way: concurrent first requests share one (else each opened its
        own connection, and all but the last stayed open, unused)."""
        self.stats = H2Stats()
        """Counters of the client-side HTTP/2 limits (``h2.H2Frontend``), one per worker."""

    async def client(
        self, address: Address, via: Via = DIRECT, source: Address = ("", 0)
    ) -> H2Client:
        """The connection to ``address`` over ``via`` (a tunnel: one per identity)."""
        key = (address, via)
        client = self.clients.get(key)
        if client is not None and client.usable:
            return client
        pending = self.connecting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._connect(key, source))
            pending.add_done_callback(_retrieve)  # every waiter may have gone
            self.connecting[key] = pending
        return await asyncio.shield(pending)  # a waiter cancelled leaves the others be

    async def _connect(self, key: tuple[Address, Via], source: Address) -> H2Client:
        address, via = key
        try:
            client = await self.connector.connect(
                address, lambda: H2Client(address), via, source
            )
            self.clients[key] = client
            return client
        finally:
            self.connecting.pop(key, None)

    async def forward(self, proxy: Proxy, ex: Exchange, fwd: Forward, down: Downstream) -> int:
        """One try over h2c (connect failures retried by the caller's policy)."""
        from l7proxy.forward import Failed

        request = fwd.request
        address = ex.endpoint = proxy.pick(fwd.backend, ex.client)
        via = self.connector.via(ex.client, address)
        known = self.clients.get((address, via))
        connecting = known is None or not known.usable
        timed = ex.timed
        started = now() if timed else 0
        try:
            client = await self.client(address, via, ex.client)
        except UpstreamFailure as exc:
            if timed:
                ex.connected(exc.connect_ns or now() - started)
            raise
        ex.via = via
        if connecting and timed:  # this request opened (or waited for) the connection
            ex.connected(now() - started)
        headers = [
            (b":method", request.method.encode()),
            (b":scheme", b"http"),
            (b":authority", request.authority.encode("latin-1")),
            (b":path", request.target.encode("latin-1")),
        ]
        headers += [
            (n.lower().encode("latin-1"), v.encode("latin-1"))
            for n, v in request.headers
            if n.lower().encode("latin-1") not in DROP
        ]
        if ex.grpc:
            headers.append((b"te", b"trailers"))
        headers.append((b"x-forwarded-for", ex.client[0].encode()))
        body = ex.body
        sid, stream = client.open(headers, end_stream=body.complete and not body.size)
        if timed and not ex.t_sent:
            ex.t_sent = now()
        if body.size or not body.complete:
            complete = body.complete
            stream.sender.buffer += b"".join(body.chunks)
            paused = False

            def more(data: bytes) -> None:
                nonlocal paused
                stream.sender.buffer += data
                stream.sender.flush()
                client.flush()
                full = len(stream.sender.buffer) > STREAM_BUFFER
                if full and not paused and body.pause is not None:
                    paused = True  # the backend's window is shut: stop the client
                    body.pause()

            def drained() -> None:
                nonlocal paused
                if paused and body.resume is not None:
                    paused = False
                    body.resume()

            def finish() -> None:
                if not complete:  # the body ended after the request went upstream
                    ex.body_ended()
                stream.sender.ending = True
                stream.sender.flush()
                client.flush()

            stream.drained = drained
            if complete:
                finish()
            else:
                body.attach(more, finish)
            stream.sender.flush()
            client.flush()
        try:
            status, resp_headers = await stream.head
            if timed:
                ex.t_first = at = now()
                ex.rare()  # an h2c response's head and end are its own (``Exchange.plain``)
                ex.t_head_out = at
                rtt = client.rtt
                ex.upstream_rtt_us = rtt.value if at < rtt.until else rtt.get(at)
            down.head(status, b"", resp_headers, None, None)
            down.pause_source(stream_hold(stream), lambda: client.release(sid, stream))
            stream.sink = down.data
            for piece in stream.pending:
                down.data(piece)
            stream.pending.clear()
            client.release(sid, stream)
            down.flush()
            await stream.done
            if timed:
                ex.t_last = now()
        except UpstreamFailure as exc:
            if down.started:
                down.abort()
                return 502
            error = UpstreamError.RESET_AFTER_SEND if exc.sent else UpstreamError.REFUSED_STREAM
            raise Failed(502, str(exc), error) from exc
        except BaseException:  # cancelled (the client reset or left) or timed out
            client.cancel(sid)
            raise
        finally:
            body.detach()
            stream.drained = None
            down.pause_source(None, None)
            if stream.unacked:  # ended or cancelled while held: the connection's window
                client.ack(stream.unacked, sid)  # is shared, give it back
                stream.unacked = 0
                client.flush()
        down.end(stream.trailers)
        return status

    def expire(self, now: float, idle: float) -> None:
        for address, client in list(self.clients.items()):
            if not client.streams and not client.usable:
                del self.clients[address]

    def close(self) -> None:
        for pending in self.connecting.values():
            pending.cancel()
        for client in self.clients.values():
            if client.transport is not None:
                client.transport.close()
        self.clients.clear()
