"""One HTTP/2 stream's output (``Sender``: DATA paced by flow control, shared with the
h2c upstream client) and a client stream as the ``Downstream`` of its exchange
(``H2Stream``), with the request-body window it holds until bytes are passed on."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import h2.config
import h2.connection
import h2.errors
import h2.exceptions
import hpack.hpack
import hpack.table
from hpack import NeverIndexedHeaderTuple

from l7proxy.exchange import Exchange, RawHeaders, RequestBody
from l7proxy.grpcerr import grpc_local, grpc_status_of
from l7proxy.http.parser import BodyKind
from l7proxy.timing import RttCache
from l7proxy.upstream import UpstreamFailure

if TYPE_CHECKING:
    import asyncio

    from l7proxy.config import Limits
    from l7proxy.h2 import H2Frontend
    from l7proxy.tlsstream import TlsStream

DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"te",
    }
)
WINDOW = 1 << 20
ENCODER_TABLE = 4096
"""The most HPACK dynamic table we keep for a peer's decoder, whatever larger size its
SETTINGS_HEADER_TABLE_SIZE allows (RFC 7541 4.2: the encoder may use less): otherwise a
peer could make us keep every header we ever sent it (a Location with its own path)."""
SECRET = frozenset({b"authorization", b"proxy-authorization"})
"""Fields never put in an HPACK dynamic table (nor a cookie under 20 bytes), as ``h2``'s
outbound normalization did (it is off: its cost per call): a guessable credential must
not be probed through the compressed size of later fields (RFC 7541 7.1.3)."""


def unchecked_config(*, client_side: bool) -> h2.config.H2Configuration:
    """The waypoint's ``h2`` configuration, both sides: no header checks nor normalization
    (their cost per call); ``h2head`` checks what they checked (request heads from clients,
    response heads from backends) and ``fields`` normalizes what we send."""
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def field(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """One outbound field (``name`` lowercase), never indexed if it is a secret."""
    if name in SECRET or (name == b"cookie" and len(value) < 20):
        return NeverIndexedHeaderTuple(name, value)
    return (name, value)


def fields(headers: RawHeaders) -> list[tuple[bytes, bytes]]:
    """Regular fields toward a client: names lowercased, connection-level ones dropped."""
    out = []
    for n, v in headers:
        name = n.lower()
        if name not in DROP:
            out.append(field(name, v))
    return out


class _Quiet:
    """hpack logs each field it codes at DEBUG (about 80 calls per unary gRPC call, each
    a ``Logger.debug`` that finds DEBUG off): its module loggers are replaced by this."""

    def debug(self, *args: object, **kwargs: object) -> None:
        pass


for _module in (hpack.hpack, hpack.table):  # each has ``log = logging.getLogger(__name__)``
    if not logging.getLogger(_module.__name__).isEnabledFor(logging.DEBUG):
        vars(_module)["log"] = _Quiet()  # (whoever turned DEBUG on keeps the messages)

STREAM_BUFFER = 64 * 1024
"""Bytes a stream holds for a peer that cannot take them before its source is paused
(per stream: a client with 100 streams that reads nothing parks about 100 x this)."""


class Sender:
    """Outbound DATA for one stream, paced by HTTP/2 flow control."""

    __slots__ = ("conn", "stream_id", "buffer", "ending", "trailers", "closed", "sent")

    def __init__(self, conn: h2.connection.H2Connection, stream_id: int) -> None:
        self.conn: h2.connection.H2Connection = conn
        self.stream_id = stream_id
        self.buffer = bytearray()
        self.ending = False
        self.trailers: RawHeaders | None = None
        self.closed = False
        self.sent = 0

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
                self.sent += size
            if self.ending:
                self.closed = True
                if self.trailers:
                    conn.send_headers(sid, self.trailers, end_stream=True)
                else:
                    conn.send_data(sid, b"", end_stream=True)
        except h2.exceptions.StreamClosedError:
            self.closed = True
        except h2.exceptions.ProtocolError:  # trailers h2 refuses: end the stream, reset
            self.closed = True
            try:
                conn.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            except h2.exceptions.ProtocolError:
                pass


class H2Stream:
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
        self.held = False
        """Request body bytes are not being passed on: do not reopen the window."""
        self.unacked = 0
        self.kept = 0
        """Bytes of the body kept for retries, as counted in ``H2Frontend.kept``."""
        self.mark = (0, 0.0)
        """(bytes moved, when) as last seen by ``H2Frontend.check``."""
        self.exchange: Exchange | None = None
        self.body_at = 0.0
        """When request body bytes last arrived."""

    @property
    def tls(self) -> TlsStream | None:
        """The connection's TLS (h2 by ALPN): the proxy answers 421 to a Host that is not
        the SNI's listener, as over HTTP/1.1."""
        return self.front.conn.tls

    @property
    def rtt(self) -> RttCache:
        """The kernel's RTT of the client connection (timing)."""
        return self.front.conn.rtt

    # --- request body flow control ------------------------------------------------------

    def hold(self) -> None:
        # body.paused too: a sink attached later (a retry after the paused upstream
        # failed) then releases the window instead of leaving it shut.
        self.held = self.body.paused = True

    def release(self) -> None:
        self.held = self.body.paused = False
        if self.kept and not self.body.kept:  # attach dropped the copy over the budget
            self.front.unkeep(self)
        if self.unacked:
            count, self.unacked = self.unacked, 0
            self.front.ack(count, self.stream_id)
            self.front.flush()

    def stalled(self, now: float, timeout: float, *, draining: bool) -> bool:
        """Waiting on the client (body owed while the window is open, or response not
        read) with no byte moving for ``timeout`` (``H2Frontend.check``)."""
        sender = self.sender
        if draining:
            waiting = not sender.closed  # the exchange is done: only the window is missing
        else:
            waiting = (not self.body.complete and not self.held) or bool(sender.buffer)
        moved = self.body.size + sender.sent
        if not waiting or moved != self.mark[0]:
            self.mark = (moved, now)
        return now - self.mark[1] > timeout

    def late_body(self, now: float, limits: Limits) -> str:
        """Why the request body is too slow under HTTP/1.1's deadlines (``body_timeout``
        in all, ``body_idle_timeout`` between bytes while read), or "". Not for gRPC,
        whose client streams may last (they hold an h2c stream, not a pooled connection)."""
        ex = self.exchange
        if ex is None or ex.grpc or self.body.complete:
            return ""
        if now - ex.started > limits.body_timeout:
            return "request body not received in time"
        if self.held:
            self.body_at = now  # the waypoint is not reading: the client owes nothing yet
        elif now - self.body_at > limits.body_idle_timeout:
            return "request body stalled"
        return ""

    def body_timed_out(self, why: str) -> None:
        """End the exchange 408: answered so if nothing was yet, else reset."""
        if self.exchange is not None:
            self.exchange.aborted = (408, "REQUEST_TIMEOUT")
        if self.task is not None:
            self.task.cancel()
        if self.started:
            self.abort(h2.errors.ErrorCodes.CANCEL)
        else:
            self.local(408, [(b"content-type", b"text/plain")], f"{why}\n".encode())

    # --- Downstream ---------------------------------------------------------------------

    def local(self, status: int, headers: RawHeaders, body: bytes, *, close: bool = False) -> None:
        ex = self.exchange
        if ex is not None and ex.grpc:
            status, headers, body = grpc_local(status, headers, body)
            ex.grpc_status = grpc_status_of(headers)
        if not body:  # one HEADERS frame that ends the stream: gRPC's trailers-only errors
            out = [(b":status", b"%d" % status), *fields(headers)]
            self.started = True
            self.sender.closed = True
            if not self.front.send_headers(self.stream_id, out, end_stream=True):
                self.abort()
            return
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
        out = [(b":status", b"%d" % status), *fields(headers)]
        ex = self.exchange
        if ex is not None and ex.grpc:  # a trailers-only answer carries it in its head
            ex.grpc_status = grpc_status_of(out)
        if length is not None and body is not None:
            out.append((b"content-length", b"%d" % length))
        self.started = True
        if not self.front.send_headers(self.stream_id, out, end_stream=False):
            self.abort()

    def flush(self) -> None:
        pass

    def data(self, data: bytes) -> None:
        sender = self.sender
        sender.buffer += data
        if self.front.writable:
            self.front.move(self)
        if self.pause_cb is not None and len(sender.buffer) > STREAM_BUFFER:
            self.pause_cb()
        self.front.flush()

    def end(self, trailers: RawHeaders | None = None) -> None:
        self.sender.ending = True
        if trailers:
            self.sender.trailers = [field(n.lower(), v) for n, v in trailers]
            ex = self.exchange
            if ex is not None and ex.grpc:
                ex.grpc_status = grpc_status_of(self.sender.trailers)
        if self.front.writable:
            self.front.move(self)
        self.front.flush()

    def abort(self, code: h2.errors.ErrorCodes = h2.errors.ErrorCodes.INTERNAL_ERROR) -> None:
        self.sender.closed = True
        self.sender.buffer.clear()
        self.front.reset(self.stream_id, code)

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
