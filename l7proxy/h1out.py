"""The response side of an HTTP/1.1 client connection (``Http1Connection``'s
``Downstream`` methods): framing (Content-Length, chunked, close), the head held until
the first body bytes, 100 Continue, and the write-side slow-client checks
(``max_write_buffer``). The read side, pipelining and timers stay in ``h1.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from l7proxy.exchange import Exchange, RawHeaders
from l7proxy.http.parser import BodyKind
from l7proxy.http.wire import CONTINUE, LAST_CHUNK, chunk, reason, response_head

if TYPE_CHECKING:
    from l7proxy.server import WaypointServer


class Http1Responder:
    """State set by ``Http1Connection.__init__`` and reset per response in ``_next``."""

    server: WaypointServer
    transport: asyncio.Transport | None
    mode: str
    serving: Exchange | None
    response_status: int
    writes_paused_since: float
    protocol: str
    started: bool
    keep_alive: bool
    chunked: bool
    held: bytes
    pause_cb: Callable[[], None] | None
    resume_cb: Callable[[], None] | None

    def local(self, status: int, headers: RawHeaders, body: bytes, *, close: bool = False) -> None:
        if close:
            self.keep_alive = False
        headers = [*headers, (b"content-length", b"%d" % len(body))]
        if not self.keep_alive:
            headers.append((b"connection", b"close"))
        self.started = True
        self.response_status = status
        self._write(response_head(status, reason(status), headers) + body)

    def head(
        self,
        status: int,
        reason_phrase: bytes,
        headers: RawHeaders,
        body: BodyKind | None,
        length: int | None,
    ) -> None:
        if body is BodyKind.LENGTH or (body is BodyKind.NONE and length is not None):
            headers.append((b"content-length", b"%d" % (length or 0)))
        elif body is BodyKind.NONE:
            if status >= 200 and status not in (204, 304):
                headers.append((b"content-length", b"0"))
        elif self.protocol == "HTTP/1.1":
            headers.append((b"transfer-encoding", b"chunked"))
            self.chunked = True
        else:
            self.keep_alive = False
        if not self.keep_alive and status != 101:
            headers.append((b"connection", b"close"))
        self.started = True
        self.response_status = status
        # Held until the first body bytes or flush(): one write for a small response.
        self.held = response_head(status, reason_phrase or reason(status), headers)

    def flush(self) -> None:
        if self.held:
            held, self.held = self.held, b""
            self._write(held)

    def data(self, data: bytes) -> None:
        if self.transport is not None and self.mode != "closed":
            payload = chunk(data) if self.chunked else data
            if self.held:
                payload, self.held = self.held + payload, b""
            self.transport.write(payload)
            if self.writes_paused_since:
                self._check_buffer()

    def end(self, trailers: RawHeaders | None = None) -> None:
        if self.chunked:
            self.held += LAST_CHUNK
        self.flush()

    def abort(self) -> None:
        self.mode = "closed"
        if self.transport is not None:
            self.transport.abort()

    def continue_(self) -> None:
        if self.protocol == "HTTP/1.1":
            self._write(CONTINUE)

    def pause_source(
        self, pause: Callable[[], None] | None, resume: Callable[[], None] | None
    ) -> None:
        self.pause_cb, self.resume_cb = pause, resume

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.mode != "closed":
            self.transport.write(data)
            if self.writes_paused_since:
                self._check_buffer()

    def _check_buffer(self) -> None:
        """Over the high-water mark: past the ceiling, the client is not reading."""
        assert self.transport is not None
        if self.transport.get_write_buffer_size() > self.server.config.limits.max_write_buffer:
            self._drop_slow_client("CLIENT_WRITE_BUFFER_FULL")

    def _drop_slow_client(self, reason: str) -> None:
        self.server.metrics.count_close(reason)
        if self.serving is not None:
            self.serving.aborted = (self.response_status or 499, reason)
        self.abort()

    def _close(self) -> None:
        if self.transport is not None and self.mode != "closed":
            self.mode = "closed"
            self.transport.close()
