"""The client-side HTTP/1.1 connection: parser events in, ``Proxy.handle`` per request,
responses out in request order. A connection that opens with the HTTP/2 preface is
handed to the h2c front end; one whose request was upgraded becomes a byte splice.

Slow clients: a head not complete in ``header_timeout`` gets 408; a request body that
stalls (``body_idle_timeout`` without a byte while the waypoint reads) or takes longer
than ``body_timeout`` gets 408 (or the connection closes once the response started);
a client that lets more than ``max_write_buffer`` bytes queue toward it, or reads
nothing for ``write_timeout`` while responses wait, is closed. Each is counted and,
for a request, recorded as a DROPPED flow.

Pipelining: requests are parsed as they arrive and queued (reading pauses beyond
``max_pipeline``); each is served only after the previous response ended. A request that
will close the connection is the last one read. A parse error is answered (400, 405,
431) once the responses before it are out, then the connection closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from gatewayapi import GatewayParent, IngressParent, Parent, ServiceParent
from l7proxy.exchange import Exchange, RequestBody
from l7proxy.flows import now_ns
from l7proxy.h1out import Http1Responder
from l7proxy.http.parser import END, ParseError, RequestHead, RequestParser, UpgradeData
from l7proxy.http.wire import error_response
from l7proxy.timing import NO_RTT, RttCache, now, transport_socket

if TYPE_CHECKING:
    from l7proxy.h2 import H2Frontend
    from l7proxy.server import WaypointServer
    from l7proxy.tls import TlsStream

log = logging.getLogger("tulle.waypoint")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Http1Connection(Http1Responder, asyncio.Protocol):
    def __init__(self, server: WaypointServer, parent: Parent | None) -> None:
        self.server = server
        self.proxy = server.proxy
        self.parent = parent
        limits = server.config.limits
        self.parser = RequestParser(
            max_header_bytes=limits.max_header_bytes, max_headers=limits.max_headers
        )
        self.transport: asyncio.Transport | None = None
        self.rtt = NO_RTT  # the kernel's RTT of the client (timing)
        self.client: tuple[str, int] = ("", 0)
        self.local_addr: tuple[str, int] = ("", 0)
        self.queue: deque[tuple[Exchange, RequestHead]] = deque()
        self.parsing: Exchange | None = None
        self.parsing_keep_alive = True
        self.task: asyncio.Task[None] | None = None
        self.error: ParseError | None = None
        self.mode = "new"  # new, h1, h2, tunnel, closed
        self.h2: H2Frontend | None = None
        self.upgrade_data = b""
        self.tunnel_write: Callable[[bytes], None] | None = None
        self.tunnel_close: Callable[[], None] | None = None
        self.head_started = 0.0
        self.idle_since = 0.0
        self.paused = False
        self.body_read_at = 0.0
        """When the request body being read last made progress (or reading resumed)."""
        self.serving: Exchange | None = None
        self.writes_paused_since = 0.0
        """Since when the socket's buffer has been over its high-water mark (0: it is not)."""
        self.stalled_at = 0
        """Monotonic ns: writes paused while a timed response was under way (0: not)."""
        self.response_status = 0
        # the response in progress (Downstream state)
        self.protocol = "HTTP/1.1"
        self.scheme = server.config.scheme
        self.started = False
        self.keep_alive = True
        self.chunked = False
        self.held = b""
        self.pause_cb: Callable[[], None] | None = None
        self.resume_cb: Callable[[], None] | None = None
        self.tls: TlsStream | None = None
        """TLS terminated here (HTTPS Gateway listeners): ``tls.listener`` is SNI's choice."""

    # --- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.rtt = RttCache(transport_socket(transport))
        peer = transport.get_extra_info("peername") or ("", 0)
        sock = transport.get_extra_info("sockname") or ("", 0)
        self.client = (peer[0], peer[1])
        self.local_addr = (sock[0], sock[1])
        resolve = self.server.config.original_destination
        if resolve is not None:
            original = resolve(self.client)
            if original is None:  # not redirected by the datapath: nothing to serve
                self.mode = "closed"
                self.proxy.refuse(self.client, self.local_addr, "WAYPOINT_NOT_REDIRECTED")
                self.transport.abort()
                return
            if isinstance(original, GatewayParent | ServiceParent | IngressParent):
                self.parent = original
            elif original is not None:
                self.local_addr = (str(original[0]), int(original[1]))
        if isinstance(self.parent, GatewayParent) and self.parent in self.proxy.tables.tls:
            from l7proxy.tlsroute import TlsRouteConnection  # TLSRoutes: not HTTP at all

            self.mode = "closed"
            TlsRouteConnection(self.server, self.transport, self.parent, self.client,
                               self.local_addr)
            return
        tls = self.server.tls.port_for(self.parent)
        if tls is None and isinstance(self.parent, IngressParent) and self.parent.port == 443:
            # an IngressClass without TLS hosts: 443 is never plain HTTP
            self.mode = "closed"
            self.proxy.refuse(self.client, self.local_addr, "TLS_NO_CERTIFICATE")
            self.transport.abort()
            return
        if tls is not None:
            self.scheme = "https"
            self.tls = self.server.tls.wrap(self.transport, self, tls, self.client, self.local_addr)
            self.transport = self.tls
        self.idle_since = self.server.loop.time()
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        mode = self.mode
        if mode == "h1":
            self._feed(data)
        elif mode == "tunnel":
            if self.tunnel_write is not None:
                self.tunnel_write(data)
            else:
                self.upgrade_data += data
        elif mode == "h2":
            assert self.h2 is not None
            self.h2.data_received(data)
        elif mode == "new":
            self._first_bytes(data)

    def _first_bytes(self, data: bytes) -> None:
        """HTTP/2 prior knowledge or HTTP/1.1? Decided on the whole 24-byte preface, which
        may arrive over several reads: a prefix of it is held until it is complete or
        differs (then everything held is HTTP/1.1)."""
        if self.upgrade_data:
            data, self.upgrade_data = self.upgrade_data + data, b""
        if (
            data[:24] == H2_PREFACE[: len(data)]
            and self.server.h2_factory is not None
            and (self.tls is None or self.tls.sslobj.selected_alpn_protocol() == "h2")
        ):  # over TLS only when ALPN chose h2; an http/1.1 connection's preface is a bad head
            if len(data) < len(H2_PREFACE):
                self.upgrade_data = data
                if not self.head_started:
                    self.head_started = self.server.loop.time()  # the 408 timer holds it
                return
            self.head_started = 0.0
            self.mode = "h2"
            self.h2 = self.server.h2_factory(self)
            self.h2.data_received(data)
            return
        self.mode = "h1"
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.mode = "closed"
        self.server.connections.discard(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.tunnel_close is not None:
            self.tunnel_close()
        if self.h2 is not None:
            self.h2.connection_lost(exc)

    def pause_writing(self) -> None:
        self.writes_paused_since = self.server.loop.time()
        ex = self.serving
        if ex is not None and ex.timed:
            self.stalled_at = now()  # the client, not the backend, holds the response up
        if self.pause_cb is not None:
            self.pause_cb()

    def resume_writing(self) -> None:
        self.writes_paused_since = 0.0
        self._unstall()
        if self.resume_cb is not None:
            self.resume_cb()

    def _unstall(self) -> None:
        """Add the write stall so far to the response being served (``timing``)."""
        if self.stalled_at:
            at = now()
            ex = self.serving
            if ex is not None and ex.timed:
                ex.rare()
                ex.t_stall += at - self.stalled_at
            self.stalled_at = 0

    # --- requests in -----------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        loop_time = self.server.loop.time
        for event in self.parser.feed(data):
            if event.__class__ is bytes:
                assert isinstance(event, bytes) and self.parsing is not None
                self.body_read_at = loop_time()
                self.parsing.body.feed(event)
            elif event is END:
                assert self.parsing is not None
                self.parsing.body.end()
                if not self.parsing_keep_alive:
                    self._pause()  # the last request this connection will serve
            elif isinstance(event, RequestHead):
                self._request(event, loop_time())
            elif isinstance(event, ParseError):
                self.error = event
                self._pause()
                if self.task is None:
                    self._answer_error()
            elif isinstance(event, UpgradeData):
                self.upgrade_data = event.data
                self._pause()
        if self.parser.in_head:
            if not self.head_started:
                self.head_started = loop_time()
        else:
            self.head_started = 0.0
        if len(self.queue) > self.server.config.limits.max_pipeline:
            self._pause()

    def _request(self, head: RequestHead, now: float) -> None:
        limits = self.server.config.limits
        body = RequestBody(head.body, head.content_length, limits.max_buffered_body)
        body.pause, body.resume = self._pause, self._resume
        ex = Exchange(
            head.method,
            head.target,
            head.authority or _authority(self.local_addr),  # HTTP/1.0 may omit Host
            head.headers,
            body,
            self.parent,
            self.client,
            self.local_addr,
            started=now,
            started_ns=now_ns() if self.proxy.flows.enabled else 0,
            expect_continue=head.expect_continue,
            upgrade=head.upgrade,
            content_length_zero=head.content_length == 0,
        )
        self.parsing = ex
        self.body_read_at = now
        self.parsing_keep_alive = head.keep_alive
        self.queue.append((ex, head))
        if self.task is None:
            self._next()

    def _next(self) -> None:
        self.serving = None
        if not self.queue:
            self.task = None
            self.idle_since = self.server.loop.time()
            if self.error is not None:
                self._answer_error()
            elif self.paused and self.mode == "h1":
                self._resume()
            return
        ex, head = self.queue.popleft()
        # Writes still paused: from now on the stall holds up this response.
        self.stalled_at = now() if self.writes_paused_since and ex.timed else 0
        self.serving = ex
        self.response_status = 0
        self.started = False
        self.chunked = False
        self.held = b""
        self.keep_alive = head.keep_alive and not head.upgrade
        self.protocol = "HTTP/1.0" if head.version == "1.0" else "HTTP/1.1"
        self.task = self.server.loop.create_task(self._serve(ex))

    async def _serve(self, ex: Exchange) -> None:
        try:
            await self.proxy.handle(ex, self)
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("waypoint: request %s %s failed", ex.method, ex.target)
            if not self.started:
                self.local(500, [], b"internal error\n", close=True)
            self._close()
            return
        if self.mode == "tunnel":
            self.task = None
            return
        if not self.keep_alive or not ex.body.complete:
            self._close()
            return
        self._next()

    def _answer_error(self) -> None:
        error = self.error
        assert error is not None
        self.server.record_error(self, error.status)
        self._write(error_response(error.status, error.reason))
        self._close()

    # --- Downstream (the rest in h1out.Http1Responder) ---------------------------------

    def tunnel(
        self, write_upstream: Callable[[bytes], None], close_upstream: Callable[[], None]
    ) -> Callable[[bytes], None]:
        self.flush()
        self.mode = "tunnel"
        self.tunnel_write = write_upstream
        self.tunnel_close = close_upstream
        if self.upgrade_data:
            data, self.upgrade_data = self.upgrade_data, b""
            write_upstream(data)
        self._resume()
        return self._tunnel_out

    def _tunnel_out(self, data: bytes) -> None:
        if self.transport is not None and self.mode != "closed":
            self.transport.write(data)
            if self.writes_paused_since:
                self._check_buffer()

    # --- plumbing --------------------------------------------------------------------

    def _pause(self) -> None:
        if not self.paused and self.transport is not None and self.mode != "closed":
            self.paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.paused and self.transport is not None and self.mode != "closed":
            self.paused = False
            self.body_read_at = self.server.loop.time()  # our pause is not the client's stall
            self.transport.resume_reading()

    def check(self, now: float, header_timeout: float, idle_timeout: float) -> None:
        """Called by the server's sweeper: 408 for a slow head or body, close when idle
        or when the client stopped reading."""
        mode = self.mode
        if mode == "h2":
            if self.h2 is not None:
                self.h2.check(now, idle_timeout)  # idle, and streams stalled on the client
            return
        limits = self.server.config.limits
        if self.writes_paused_since and now - self.writes_paused_since > limits.write_timeout:
            self._drop_slow_client("CLIENT_WRITE_TIMEOUT")
            return
        if mode not in ("h1", "new"):
            return
        ex = self.parsing
        if ex is not None and not ex.body.complete:
            if now - ex.started > limits.body_timeout:
                self._body_timeout(ex, "request body not received in time")
                return
            if not self.paused and now - self.body_read_at > limits.body_idle_timeout:
                self._body_timeout(ex, "request body stalled")
                return
        if self.task is not None:
            return
        if self.head_started and now - self.head_started > header_timeout:
            self.server.record_error(self, 408)
            self._write(error_response(408, "request header section not received in time"))
            self._close()
        elif not self.head_started and not self.queue and now - self.idle_since > idle_timeout:
            self._close()

    def _body_timeout(self, ex: Exchange, why: str) -> None:
        """A slow or stalled request body: 408 if no response started, then close. The
        request being served ends with that status in its flow; a queued one is
        recorded here."""
        self.server.metrics.count_close("REQUEST_BODY_TIMEOUT")
        task = self.task
        if task is not None and self.serving is ex:
            ex.aborted = (408, "REQUEST_TIMEOUT")
            task.cancel()
        else:
            self.server.record_error(self, 408)
        if task is None or (self.serving is ex and not self.started):
            self._write(error_response(408, why))
            self._close()
        else:
            self.abort()  # a response is under way: cut it, never let it look complete


def _authority(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
