"""Upstream connections: the one ``Connector`` that opens them, the HTTP/1.1 backend
connection protocol, and the bounded per-endpoint pool with idle expiry.

``Connector.connect`` is the only place in the waypoint that opens a connection to a
backend, plaintext or over an HBONE stream (``l7proxy.via``: which hop, decided by
``Connector.via`` from the mesh directory; ``Connector.tunnels`` opens the streams). The pool
keys connections by (endpoint, hop), so a connection carrying one client identity's tunnel
never serves another's request.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from gatewayapi.backendtls import UpstreamTLS
from l7proxy.backendtls import TLS_DROP, BackendTLSError, open_checked
from l7proxy.http.parser import END, ParseError, UpgradeData
from l7proxy.http.response import PROTOCOL_ERROR, ResponseHead, ResponseParser
from l7proxy.timing import NO_RTT, SPLIT, RttCache, now, transport_socket
from l7proxy.via import DIRECT, HopRefused, Mesh, Refused, Tunnel, Via, choose

Address = tuple[str, int]
P = TypeVar("P", bound=asyncio.BaseProtocol)


class TunnelOpener(Protocol):
    """``l7proxy.hbone.bridge.TunnelBridge``: a protocol connected over an HBONE stream."""

    async def open(
        self, backend: Address, via: Tunnel, client: Address, factory: Callable[[], P]
    ) -> tuple[asyncio.BaseTransport, P]: ...


class UpstreamFailure(Exception):
    """A try failed without a usable response. ``sent``: the request may have reached
    the backend (``forward.before_response`` classifies it)."""

    def __init__(
        self, message: str, *, sent: bool, timeout: bool = False, drop: str = ""
    ) -> None:
        super().__init__(message)
        self.sent = sent
        self.timeout = timeout
        self.drop = drop
        """The flow's drop reason when it is more specific than the error's."""
        self.connect_ns = 0
        """Time spent on a connect that failed (the request's upstream connect time)."""


class Connector:
    """Opens every upstream connection: plaintext with ``open`` (subclassed for the
    waypoint's address and mark), over a tunnel with ``tunnels``. Without ``mesh`` (no
    mTLS) every hop is plaintext."""

    def __init__(self, *, connect_timeout: float = 5.0) -> None:
        self.connect_timeout = connect_timeout
        self.opened = 0
        self.failed = 0
        self.mesh: Mesh | None = None
        self.tunnels: TunnelOpener | None = None

    def via(self, client: Address, backend: Address) -> Via:
        """The hop from ``client``'s request to ``backend``; UpstreamFailure (not sent,
        the refusal's drop reason) when there is none (``l7proxy.via.choose``)."""
        mesh = self.mesh
        if mesh is None:
            return DIRECT
        hop = choose(client[0], backend, mesh)
        if isinstance(hop, Refused):
            raise UpstreamFailure(hop.detail, sent=False, drop=hop.drop)
        return hop

    async def connect(
        self,
        address: Address,
        factory: Callable[[], P],
        via: Via = DIRECT,
        client: Address = ("", 0),
        tls: UpstreamTLS | None = None,
    ) -> P:
        """A connected protocol from ``factory`` to ``address`` (UpstreamFailure if not),
        over ``via`` (a tunnel names ``client`` as its source), in TLS checked as ``tls``
        asks when set (a BackendTLSPolicy's; a failure's drop reason UPSTREAM_TLS_FAILED).
        The time it took is the protocol's ``connect_ns`` (or the failure's)."""
        start = now() if SPLIT.on else 0  # the request split's (``l7proxy.timing``)
        try:
            async with asyncio.timeout(self.connect_timeout):
                if tls is not None:
                    if isinstance(via, Tunnel):  # fail closed: never plaintext instead
                        raise BackendTLSError("TLS to a backend over HBONE is not supported")
                    _, protocol = await open_checked(address, factory, tls, self.open_tls)
                elif isinstance(via, Tunnel):
                    if self.tunnels is None:
                        raise HopRefused("TUNNEL_UPSTREAM_FAILED", "no HBONE in this waypoint")
                    _, protocol = await self.tunnels.open(address, via, client, factory)
                else:
                    _, protocol = await self.open(address, factory)
        except BackendTLSError as exc:
            self.failed += 1
            failure = UpstreamFailure(
                f"TLS to {_show(address)} failed: {exc}", sent=False, drop=TLS_DROP
            )
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        except HopRefused as exc:
            self.failed += 1
            failure = UpstreamFailure(
                f"tunnel to {_show(address)} failed: {exc}", sent=False, drop=exc.drop
            )
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        except TimeoutError as exc:
            self.failed += 1
            failure = UpstreamFailure(f"connect to {_show(address)} timed out", sent=False)
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        except OSError as exc:
            self.failed += 1
            failure = UpstreamFailure(
                f"connect to {_show(address)} failed: {exc.strerror or exc}", sent=False
            )
            failure.connect_ns = now() - start if start else 0
            raise failure from exc
        self.opened += 1
        if start and hasattr(protocol, "connect_ns"):
            protocol.connect_ns = now() - start
        return protocol

    async def open(
        self, address: Address, factory: Callable[[], P]
    ) -> tuple[asyncio.BaseTransport, P]:
        loop = asyncio.get_running_loop()
        return await loop.create_connection(factory, address[0], address[1])

    async def open_tls(
        self, address: Address, factory: Callable[[], P], context: ssl.SSLContext, sni: str
    ) -> tuple[asyncio.BaseTransport, P]:
        """``open`` in TLS (subclassed with it for the waypoint's address and mark)."""
        loop = asyncio.get_running_loop()
        return await loop.create_connection(
            factory, address[0], address[1], ssl=context, server_hostname=sni
        )


def _show(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        where = _show(self.address)
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
        loop = asyncio.get_running_loop()
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


@dataclass
class PoolStats:
    open: int = 0
    idle: int = 0
    created: int = 0
    reused: int = 0
    expired: int = 0
    waits: int = 0
    wait_timeouts: int = 0


class _Slot:
    __slots__ = ("idle", "count", "waiters")

    def __init__(self) -> None:
        self.idle: list[Http1Upstream] = []
        self.count = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class Pool:
    """HTTP/1.1 connections per endpoint: at most ``max_per_endpoint`` open (callers
    beyond that wait in order, up to ``wait_timeout`` seconds), idle ones reused
    newest-first and closed after ``idle_timeout`` seconds."""

    def __init__(
        self,
        connector: Connector,
        *,
        max_per_endpoint: int = 512,
        max_idle_per_endpoint: int = 128,
        idle_timeout: float = 60.0,
        wait_timeout: float = 10.0,
    ) -> None:
        self.connector = connector
        self.max_per_endpoint = max_per_endpoint
        self.max_idle = max_idle_per_endpoint
        self.idle_timeout = idle_timeout
        self.wait_timeout = wait_timeout
        self.stats = PoolStats()
        self._slots: dict[tuple[Address, Via, UpstreamTLS | None], _Slot] = {}

    async def acquire(
        self,
        address: Address,
        via: Via = DIRECT,
        client: Address = ("", 0),
        tls: UpstreamTLS | None = None,
    ) -> Http1Upstream:
        """An idle connection over ``via``, else a new one; at the bound, wait in order for
        one (at most ``wait_timeout`` seconds, then UpstreamFailure: the proxy answers 503).
        ``client`` names the source of a new tunnel (its identity is in ``via``). The key
        holds ``tls`` too, so a plaintext connection never serves a BackendTLSPolicy's
        request, nor one checked against another policy's CA."""
        key = (address, via, tls)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        conn = self._take_idle(slot)
        if conn is not None:
            return conn
        if slot.count >= self.max_per_endpoint:
            conn = await self._wait(slot, address)
            if conn is not None:
                return conn
        slot.count += 1
        self.stats.open += 1
        try:
            conn = await self.connector.connect(
                address, lambda: Http1Upstream(address, via, tls), via, client, tls
            )
        except BaseException:
            self._forget(slot)
            raise
        self.stats.created += 1
        conn.on_close = lambda: self._closed(slot, conn)
        return conn

    def _take_idle(self, slot: _Slot) -> Http1Upstream | None:
        idle = slot.idle
        while idle:
            conn = idle.pop()
            self.stats.idle -= 1
            if not conn.closed:
                self.stats.reused += 1
                return conn
        return None

    async def _wait(self, slot: _Slot, address: Address) -> Http1Upstream | None:
        """Wait until ``slot`` has an idle connection (returned) or room for a new one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while slot.count >= self.max_per_endpoint:
            self.stats.waits += 1
            waiter = loop.create_future()
            slot.waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake(slot)  # woken but leaving: pass the turn on
                if not isinstance(exc, TimeoutError):
                    raise
                self.stats.wait_timeouts += 1
                raise UpstreamFailure(
                    f"no connection to {_show(address)} free within {self.wait_timeout:g} s "
                    f"({self.max_per_endpoint} open)",
                    sent=False,
                    drop="UPSTREAM_POOL_EXHAUSTED",
                ) from None
            conn = self._take_idle(slot)
            if conn is not None:
                return conn
        return None

    def release(self, conn: Http1Upstream) -> None:
        """Return ``conn`` after its response ended; it is kept only when reusable."""
        slot = self._slots.get((conn.address, conn.via, conn.tls))
        if slot is None:
            conn.close()
            return
        if conn.reusable and len(slot.idle) < self.max_idle:
            conn.sink = None
            conn.head = None
            conn.on_pause = conn.on_resume = None
            conn.idle_since = asyncio.get_running_loop().time()
            slot.idle.append(conn)
            self.stats.idle += 1
            self._wake(slot)
        else:
            conn.close()

    def _closed(self, slot: _Slot, conn: Http1Upstream) -> None:
        if conn in slot.idle:
            slot.idle.remove(conn)
            self.stats.idle -= 1
        self._forget(slot)

    def _forget(self, slot: _Slot) -> None:
        slot.count -= 1
        self.stats.open -= 1
        self._wake(slot)

    @staticmethod
    def _wake(slot: _Slot) -> None:
        while slot.waiters:
            waiter = slot.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def expire(self, now: float) -> None:
        """Close connections idle for longer than ``idle_timeout`` (called periodically)."""
        limit = now - self.idle_timeout
        for slot in self._slots.values():
            stale = [c for c in slot.idle if c.idle_since < limit]
            for conn in stale:
                slot.idle.remove(conn)
                self.stats.idle -= 1
                self.stats.expired += 1
                conn.close()

    def close(self) -> None:
        for slot in self._slots.values():
            for conn in slot.idle:
                conn.close()
            slot.idle.clear()
        self.stats.idle = 0
