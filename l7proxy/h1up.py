"""Http1Upstream: one HTTP/1.1 connection to a backend (the protocol the pool keeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from gatewayapi.backendtls import UpstreamTLS
from l7proxy.http.parser import END, ParseError, UpgradeData
from l7proxy.http.response import PROTOCOL_ERROR, ResponseHead, ResponseParser
from l7proxy.timing import NO_RTT, RttCache, now, transport_socket
from l7proxy.upstream import Address, UpstreamFailure, show_address
from l7proxy.via import DIRECT, Via


class Http1Upstream(asyncio.Protocol):
    """One HTTP/1.1 connection to a backend, carrying one request at a time.

    ``begin`` writes a request and returns the future of its response head. Body pieces
    go to ``sink`` once one is set (they are buffered until then); ``done`` resolves
    when the response is complete. After a 101 every byte goes to ``sink``.

    A connection is reusable only when the response is complete *and* the request was
    sent whole (``request_complete``): a backend may answer before reading the body, and
    whatever it still expects must never be taken from the next request.
    """

    def __init__(
        self, address: Address, via: Via = DIRECT, tls: UpstreamTLS | None = None
    ) -> None:
        self.address = address
        self.via = via
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.parser = ResponseParser()
        self.head: asyncio.Future[ResponseHead] | None = None
        self.done: asyncio.Future[None] | None = None
        self.sink: Callable[[bytes], None] | None = None
        self.pending: list[bytes] = []
        self.tunnel = False
        self.closed = False
        self.on_close: Callable[[], None] | None = None
        self.on_pause: Callable[[], None] | None = None
        self.on_resume: Callable[[], None] | None = None
        self.idle_since = 0.0
        self.requests = 0
        self.received = False
        self.request_complete = True
        """Every byte of the current request was written (nothing is owed upstream)."""
        self.rtt = NO_RTT  # the kernel's RTT of this connection (timing)
        self.connect_ns = 0  # how long opening this connection took (``Connector``)
        self.timed = False  # the current request takes timing marks (``Exchange.timed``)
        self.head_at = 0  # monotonic ns: the current response's head arrived
        self.end_at = 0  # ... and its last byte, when not in the head's read
        # The loop this connection lives on, from its first request: asked once, not per
        # request (Python 3.11's get_running_loop() is a getpid system call).
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.rtt = RttCache(transport_socket(transport))

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            if self.sink is not None:
                self.sink(data)
            return
        self.received = True
        if self.head is None:  # unsolicited bytes on an idle connection
            self.parser.reusable = False
            self.close()
            return
        at = 0  # the head's clock reading (timed only): an end in the same read needs none
        for event in self.parser.feed(data):
            if event.__class__ is bytes:
                assert isinstance(event, bytes)
                if self.sink is not None:
                    self.sink(event)
                else:
                    self.pending.append(event)
            elif event is END:
                if self.done is not None and not self.done.done():
                    if self.timed and not at:  # not with the head: when it came
                        self.end_at = now()
                    self.done.set_result(None)
            elif isinstance(event, ResponseHead):
                if not self.head.done():
                    if self.timed:
                        self.head_at = at = now()
                    self.head.set_result(event)
            elif isinstance(event, UpgradeData):
                self.tunnel = True
                if event.data:
                    self.pending.append(event.data)
            elif isinstance(event, ParseError):
                self._fail(UpstreamFailure(event.reason, sent=True, drop=PROTOCOL_ERROR))

    def eof_received(self) -> bool:
        for event in self.parser.eof():
            if event is END and self.done is not None and not self.done.done():
                if self.timed:
                    self.end_at = now()
                self.done.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser.reusable = False
        self.eof_received()
        where = show_address(self.address)
        self._fail(UpstreamFailure(f"backend {where} closed the connection", sent=True))
        if self.on_close is not None:
            self.on_close()

    def pause_writing(self) -> None:
        # The backend is slower than the client: stop reading the client's body.
        if self.on_pause is not None:
            self.on_pause()

    def resume_writing(self) -> None:
        if self.on_resume is not None:
            self.on_resume()

    # --- used by the proxy -----------------------------------------------------------

    def begin(
        self, data: bytes, *, complete: bool, head_request: bool = False
    ) -> asyncio.Future[ResponseHead]:
        """Write a request head (and the body so far); ``complete``: nothing more follows
        (else the caller writes the rest and calls ``finish_request``)."""
        loop = self.loop
        if loop is None:
            loop = self.loop = asyncio.get_running_loop()
        self.head = loop.create_future()
        self.done = loop.create_future()
        self.sink = None
        self.pending = []
        self.parser.start(head=head_request)
        self.requests += 1
        self.received = False
        self.request_complete = complete
        self.head_at = self.end_at = 0
        assert self.transport is not None
        self.transport.write(data)
        return self.head

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def finish_request(self) -> None:
        """The last byte of the request body was written."""
        self.request_complete = True

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """Send body bytes (buffered so far, then as they come) to ``sink``."""
        self.sink = sink
        pending, self.pending = self.pending, []
        for piece in pending:
            sink(piece)

    @property
    def reusable(self) -> bool:
        return (
            not self.closed
            and self.request_complete
            and self.parser.reusable
            and self.done is not None
            and self.done.done()
            and not self.done.cancelled()
            and self.done.exception() is None
        )

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    def _fail(self, error: UpstreamFailure) -> None:
        for future in (self.head, self.done):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: a caller may have moved on

