"""HTTP/2 cleartext (prior knowledge) toward backends: one multiplexed ``H2Client`` per
endpoint (``h2client``), opened through the one ``Connector``, for backends marked ``h2c``
and for gRPC requests. Response trailers (``grpc-status``) are handed to the client's ``end``.

Flow control end to end: response DATA is acknowledged to the backend only once the
client side took it (``Downstream.pause_source``), and the request body is paused at its
source while the backend's window is shut. A client that cancels its stream (or goes
away) makes the exchange reset the backend stream (CANCEL), so the backend stops too.

Retries are the HTTPRoute's, as over HTTP/1.1 (``forward._try_all`` drives them, and
``attempt`` is one try): a failure before the response head (connect, REFUSED_STREAM), a
backendRequest timeout, or a status in the rule's codes, while the request body is still
whole; a gRPC status (in trailers) is not an HTTP code and is not retried.

Not done: a bound on concurrent streams per connection beyond the backend's own SETTINGS.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gatewayapi import Forward, Headers, Response, UpstreamError
from l7proxy.exchange import (
    Downstream,
    Exchange,
    RawHeaders,
    appends_forwarded_for,
    forwarded_for,
)
from l7proxy.h2client import H2Client, UpStream, stream_hold
from l7proxy.h2limits import H2Stats
from l7proxy.h2stream import DROP, STREAM_BUFFER, field
from l7proxy.retries import Retries, status_retry
from l7proxy.session import add_session_field
from l7proxy.timing import now
from l7proxy.upstream import Address, Connector, UpstreamFailure
from l7proxy.via import DIRECT, Via

if TYPE_CHECKING:
    from l7proxy.proxy import Proxy


def _retrieve(future: asyncio.Future[H2Client]) -> None:
    if not future.cancelled():
        future.exception()


class _Sent:
    """A try whose response head came: what answering (or dropping) it needs."""

    __slots__ = ("client", "sid", "stream", "status", "headers")

    def __init__(
        self, client: H2Client, sid: int, stream: UpStream, status: int, headers: RawHeaders
    ) -> None:
        self.client, self.sid, self.stream = client, sid, stream
        self.status, self.headers = status, headers

    def settle(self) -> None:
        """The stream is done with: no more body, and the connection's window back."""
        stream, client = self.stream, self.client
        stream.drained = None
        if stream.unacked:  # ended or cancelled while held: the connection's window
            client.ack(stream.unacked, self.sid)  # is shared, give it back
            stream.unacked = 0
            client.flush()


def _send_body(ex: Exchange, client: H2Client, stream: UpStream) -> None:
    """The body's bytes so far onto the stream, the rest as it comes; the client is
    paused while the backend's window is shut."""
    body = ex.body
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

    async def attempt(
        self,
        proxy: Proxy,
        ex: Exchange,
        fwd: Forward,
        down: Downstream,
        attempt: int,
        deadline: float | None,
        retries: Retries,
    ) -> tuple[int, float | None]:
        """One try (``forward._try_all`` retries): (status sent, None), or (status, delay)
        when the response's status is to be retried; its stream is then reset. A failure
        before the response head raises ``UpstreamFailure`` for the caller's policy."""
        sent = await self._send(proxy, ex, fwd)
        wait = status_retry(proxy, ex, fwd, sent.status, attempt, deadline, retries)
        if wait is not None:
            ex.body.detach()
            sent.client.cancel(sent.sid)
            sent.settle()
            return sent.status, wait
        if fwd.response_steps:  # ResponseHeaderModifier and CORS, as over HTTP/1.1
            finished = fwd.finish(Response(sent.status, Headers.from_raw(sent.headers)))
            sent.status, sent.headers = finished.status, finished.headers.raw()
        if fwd.selection.rule.session is not None:
            add_session_field(proxy.sessions, fwd, ex.endpoint, sent.headers)
        return await self._respond(ex, sent, down), None

    async def _send(self, proxy: Proxy, ex: Exchange, fwd: Forward) -> _Sent:
        """A stream opened, the request (and its body so far) sent, the head read; the
        balancer and outlier detection told how it went, as ``forward._send`` does."""
        target = fwd.backend
        pin = fwd.pin if ex.endpoint is None else None  # a retry: the balancer's choice
        address = ex.endpoint = proxy.pick(target, ex.client, pin.endpoint if pin else None)
        resilience = proxy.resilience
        sent_at = resilience.clock()
        resilience.started(target, address, sent_at)
        try:
            sent = await self._send_to(ex, fwd, address, proxy.config.trust_forwarded_for)
        except (UpstreamFailure, TimeoutError):
            done = resilience.clock()  # no answer: an error, the balancer's penalty
            resilience.finished(target, address, 0, done - sent_at, done)
            raise
        except BaseException:
            resilience.abandoned(target, address)
            raise
        done = resilience.clock()
        resilience.finished(target, address, sent.status, done - sent_at, done)
        return sent

    async def _send_to(
        self, ex: Exchange, fwd: Forward, address: Address, trust_forwarded_for: bool
    ) -> _Sent:
        request = fwd.request
        via = self.connector.via(ex.client, address)
        known = self.clients.get((address, via))
        connecting = known is None or not known.usable
        timed = ex.timed
        started = now() if timed else 0
        try:
            client = await self.client(address, via, ex.client)
        except UpstreamFailure as exc:
            if timed and not exc.connect_ns:  # else the caller counts it
                ex.connected(now() - started)
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
        xff = b""
        for n, v in request.headers:
            name = n.lower().encode("latin-1")
            if name == b"x-forwarded-for":
                xff = xff + b", " + v.encode("latin-1") if xff else v.encode("latin-1")
            elif name not in DROP:
                headers.append(field(name, v.encode("latin-1")))
        if ex.grpc:
            headers.append((b"te", b"trailers"))
        append = appends_forwarded_for(ex.parent, trust_forwarded_for)
        headers.append((b"x-forwarded-for", forwarded_for(xff, ex.client[0].encode(), append)))
        body = ex.body
        sid, stream = client.open(headers, end_stream=body.complete and not body.size)
        if timed and not ex.t_sent:
            ex.t_sent = now()
        if body.size or not body.complete:
            _send_body(ex, client, stream)
        try:
            status, resp_headers = await stream.head
        except UpstreamFailure:
            body.detach()
            _Sent(client, sid, stream, 0, []).settle()
            raise
        except BaseException:  # cancelled (the client reset or left) or timed out
            client.cancel(sid)
            body.detach()
            _Sent(client, sid, stream, 0, []).settle()
            raise
        return _Sent(client, sid, stream, status, resp_headers)

    async def _respond(self, ex: Exchange, sent: _Sent, down: Downstream) -> int:
        """The response streamed to the client (answers from here are not retried)."""
        from l7proxy.failures import Failed

        client, sid, stream = sent.client, sent.sid, sent.stream
        try:
            if ex.timed:
                ex.t_first = at = now()
                ex.rare()  # an h2c response's head and end are its own (``Exchange.plain``)
                ex.t_head_out = at
                rtt = client.rtt
                ex.upstream_rtt_us = rtt.value if at < rtt.until else rtt.get(at)
            down.head(sent.status, b"", sent.headers, None, None)
            down.pause_source(stream_hold(stream), lambda: client.release(sid, stream))
            stream.sink = down.data
            for piece in stream.pending:
                down.data(piece)
            stream.pending.clear()
            client.release(sid, stream)
            down.flush()
            await stream.done
            if ex.timed:
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
            ex.body.detach()
            down.pause_source(None, None)
            sent.settle()
        down.end(stream.trailers)
        return sent.status

    def expire(self, now: float, idle: float) -> None:
        for address, client in list(self.clients.items()):
            if not client.streams and not client.usable:
                del self.clients[address]

    def close(self) -> None:
        for pending in self.connecting.values():
            pending.cancel()
        for client in self.clients.values():
            client.close()
        self.clients.clear()
