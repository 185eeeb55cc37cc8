"""Forwarding one routed request over HTTP/1.1 (or, try by try, over the h2c client): the
rule's request timeout, retries (with ``retries.Retries``: maxRetries and the retry budget)
and backend timeout, pooled connections replaced when a backend closed them while idle,
the response streamed to the ``Downstream`` (or an Upgrade spliced). ``Failed``
(``l7proxy.failures``) is the error answer the caller records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from gatewayapi import BackendTarget, Forward, Headers, Request, Response, UpstreamError
from l7proxy.backendtls import TLS_DROP
from l7proxy.exchange import Downstream, Exchange, RawHeaders, RequestBody, upstream_head
from l7proxy.failures import Failed, before_response
from l7proxy.h1up import Http1Upstream
from l7proxy.http.parser import BodyKind
from l7proxy.http.response import PROTOCOL_ERROR, ResponseHead, upgrade_refusal
from l7proxy.http.wire import HOP_BY_HOP, LAST_CHUNK, chunk, end_to_end
from l7proxy.retries import RETRY_BUDGET_DROP, Retries, retries_for, status_retry
from l7proxy.session import add_session_field
from l7proxy.timing import now
from l7proxy.upstream import UpstreamFailure

if TYPE_CHECKING:
    from l7proxy.proxy import Proxy

async def forward(proxy: Proxy, ex: Exchange, fwd: Forward, down: Downstream) -> int:
    """Send ``fwd.request`` upstream with retries; stream the answer to ``down``.
    Returns the status sent; raises Failed when the proxy must answer an error."""
    timeouts = fwd.timeouts
    deadline = ex.started + timeouts.request if timeouts.request else None
    if ex.expect_continue and not ex.body.complete:
        down.continue_()
    try:
        if deadline is None:
            return await _upstream(proxy, ex, fwd, down, None)
        async with asyncio.timeout_at(deadline):
            return await _upstream(proxy, ex, fwd, down, deadline)
    except TimeoutError:
        if down.started:
            down.abort()
            return 504
        return _fail(down, Failed(504, "request timeout", UpstreamError.BACKEND_TIMEOUT))
    except Failed as failure:
        return _fail(down, failure)


async def _upstream(
    proxy: Proxy, ex: Exchange, fwd: Forward, down: Downstream, deadline: float | None
) -> int:
    h2 = proxy.h2 if proxy.h2 is not None and (ex.grpc or _speaks_h2(proxy, fwd.backend)) else None
    return await _tries(proxy, ex, fwd, down, deadline, h2)


def _fail(down: Downstream, failure: Failed) -> int:
    if down.started:
        down.abort()
    else:
        body = (str(failure) + "\n").encode()
        down.local(failure.status, [(b"content-type", b"text/plain")], body, close=failure.close)
    raise failure


async def _tries(
    proxy: Proxy,
    ex: Exchange,
    fwd: Forward,
    down: Downstream,
    deadline: float | None,
    h2: object | None,
) -> int:
    retries = retries_for(proxy, fwd.backend)
    try:
        return await _try_all(proxy, ex, fwd, down, deadline, retries, h2)
    finally:
        retries.release()


async def _try_all(
    proxy: Proxy,
    ex: Exchange,
    fwd: Forward,
    down: Downstream,
    deadline: float | None,
    retries: Retries,
    h2: object | None,
) -> int:
    """Tries until one answers or the retry policy, the budget or the limits stop; over
    ``h2`` (``h2up.H2Upstreams``) when the backend speaks h2c or the request is gRPC."""
    policy = fwd.retry
    backend_timeout = fwd.timeouts.backend_request
    attempt = 0
    # The loop's clock only on a failure: Python 3.11's get_running_loop() is a getpid
    # system call, and this runs for every request (bench/results/traceattr-2026-12-06.md).
    while True:
        attempt += 1
        outcome: int | UpstreamError
        try:
            if backend_timeout is None:
                status, wait = await _attempt(
                    proxy, ex, fwd, down, attempt, deadline, retries, h2
                )
            else:
                async with asyncio.timeout(backend_timeout):
                    status, wait = await _attempt(
                        proxy, ex, fwd, down, attempt, deadline, retries, h2
                    )
            if wait is None:
                return status
            await asyncio.sleep(wait)
            continue
        except UpstreamFailure as exc:
            if exc.connect_ns:
                ex.connected(exc.connect_ns)
            if down.started:  # a byte of the response went: never retried
                raise Failed(502, str(exc), UpstreamError.RESET_AFTER_SEND) from exc
            failure = before_response(exc)
            outcome = failure.error
        except TimeoutError as exc:
            if down.started or (deadline is not None
                                and asyncio.get_running_loop().time() >= deadline):
                raise
            outcome = UpstreamError.BACKEND_TIMEOUT
            failure = Failed(504, "backend request timeout", outcome)
            failure.__cause__ = exc
        if policy is None or not ex.body.replayable:
            raise failure
        remaining = (deadline - asyncio.get_running_loop().time()
                     if deadline is not None else None)
        wait = policy.should_retry(attempt, outcome, draw=proxy.rng(), remaining=remaining)
        if wait is None:
            raise failure
        if not retries.take():
            if retries.over_budget:
                failure.drop = RETRY_BUDGET_DROP
            raise failure
        await asyncio.sleep(wait)


async def _attempt(
    proxy: Proxy,
    ex: Exchange,
    fwd: Forward,
    down: Downstream,
    attempt: int,
    deadline: float | None,
    retries: Retries,
    h2: object | None,
) -> tuple[int, float | None]:
    """One try: (status sent, None), or (status, delay) when it is to be retried."""
    if h2 is not None:
        if fwd.backend in proxy.backend_tls:  # fail closed rather than send h2c in the clear
            raise UpstreamFailure(
                f"BackendTLSPolicy on {fwd.backend}: h2 over TLS to backends is not supported",
                sent=False, drop=TLS_DROP,
            )
        return await h2.attempt(  # type: ignore[attr-defined,no-any-return]
            proxy, ex, fwd, down, attempt, deadline, retries
        )
    conn, head = await _send(proxy, ex, fwd)
    wait = status_retry(proxy, ex, fwd, head.status, attempt, deadline, retries)
    if wait is not None:
        ex.body.detach()
        _discard(proxy, conn)
        return head.status, wait
    return await _stream(proxy, ex, fwd, conn, head, down), None


def _discard(proxy: Proxy, conn: Http1Upstream) -> None:
    if conn.done is not None and conn.done.done():
        proxy.pool.release(conn)
    else:
        conn.abort()


def _speaks_h2(proxy: Proxy, target: BackendTarget) -> bool:
    protocols = proxy.config.protocols
    return bool(protocols) and protocols.get((target.namespace, target.name, target.port)) == "h2c"


async def _send(proxy: Proxy, ex: Exchange, fwd: Forward) -> tuple[Http1Upstream, ResponseHead]:
    """One try: a connection, the request written, the response head read. A pooled
    connection that the backend closed while idle is replaced (up to three times; under a
    retry stanza the retry does it, each try counted)."""
    target = fwd.backend
    pin = fwd.pin if ex.endpoint is None else None  # a retry: the balancer's choice
    address = ex.endpoint = proxy.pick(target, ex.client, pin.endpoint if pin else None)
    resilience = proxy.resilience
    clock = resilience.clock
    sent_at = clock()
    resilience.started(target, address, sent_at)
    try:
        conn, head = await _send_to(proxy, ex, fwd, address)
    except (UpstreamFailure, TimeoutError):
        # no answer: an error for outlier detection, the penalty for the balancer
        done = clock()
        resilience.finished(target, address, 0, done - sent_at, done)
        raise
    except BaseException:
        resilience.abandoned(target, address)  # the client left: says nothing of the endpoint
        raise
    done = clock()
    resilience.finished(target, address, head.status, done - sent_at, done)
    return conn, head


async def _send_to(
    proxy: Proxy, ex: Exchange, fwd: Forward, address: tuple[str, int]
) -> tuple[Http1Upstream, ResponseHead]:
    via = proxy.connector.via(ex.client, address)  # plaintext or HBONE (``l7proxy.via``)
    tls = proxy.upstream_tls(fwd.backend, ex.parent)  # a BackendTLSPolicy's, maybe mutual
    body = ex.body
    limits = proxy.resilience.limits(fwd.backend)
    for _ in range(3):
        if ex.upgrade:
            conn = await proxy.connector.connect(
                address, lambda: Http1Upstream(address, via, tls), via, ex.client, tls
            )
        else:
            conn = await proxy.pool.acquire(address, via, ex.client, tls)
        ex.via = via  # the request goes over it: a tunnel marks the flow encrypted
        reused = conn.requests > 0
        if not reused:
            ex.connected(conn.connect_ns)
        head_bytes, chunked = upstream_request_head(
            ex, fwd.request, proxy.config.trust_forwarded_for
        )
        if body.complete or not body.kept:
            payload = b"".join(body.chunks) if body.complete else b""
        elif chunked:
            payload = b"".join(chunk(c) for c in body.chunks)
        else:
            payload = b"".join(body.chunks)
        timed = conn.timed = ex.timed
        future = conn.begin(
            head_bytes + payload, complete=body.complete, head_request=ex.method == "HEAD"
        )
        if limits is not None and not limits.reusable(conn.requests):
            conn.parser.reusable = False  # maxRequestsPerConnection: closed after this one
        if timed and not ex.t_sent:
            ex.t_sent = now()
        if not body.complete:
            # The rest of the body follows as it arrives, also after the response head
            # (until the response ends); the connection is reusable only if it all went.
            conn.on_pause, conn.on_resume = body.pause, body.resume
            write = _chunked_writer(conn.write) if chunked else conn.write
            body.attach(write, _request_end(conn, body, chunked, ex))
        try:
            head = await future
        except UpstreamFailure:
            body.detach()
            conn.abort()
            # a kept-alive connection the backend closed as the request went: sent again
            # at once, unless the rule retries (then each try counts against attempts)
            if reused and not conn.received and body.replayable and fwd.retry is None:
                continue
            raise
        except BaseException:
            body.detach()
            conn.abort()
            raise
        if timed:
            ex.t_first = at = conn.head_at
            rtt = conn.rtt
            ex.upstream_rtt_us = rtt.value if at < rtt.until else rtt.get(at)
        return conn, head
    raise UpstreamFailure(f"backend {address[0]}:{address[1]} keeps closing", sent=True)


async def _stream(
    proxy: Proxy,
    ex: Exchange,
    fwd: Forward,
    conn: Http1Upstream,
    head: ResponseHead,
    down: Downstream,
) -> int:
    try:
        return await _respond(proxy, ex, fwd, conn, head, down)
    finally:
        ex.body.detach()  # the response ended: send no more of the body on ``conn``


async def _respond(
    proxy: Proxy,
    ex: Exchange,
    fwd: Forward,
    conn: Http1Upstream,
    head: ResponseHead,
    down: Downstream,
) -> int:
    if head.status == 101:
        problem = upgrade_refusal(ex.upgrade, ex.headers, head)
        if problem:
            conn.abort()
            error = UpstreamError.RESET_AFTER_SEND
            raise Failed(502, problem, error, drop=PROTOCOL_ERROR, close=True)
    status = head.status
    headers = end_to_end(head.headers)
    if fwd.response_steps:
        finished = fwd.finish(Response(status, Headers.from_raw(headers)))
        status, headers = finished.status, raw_headers(finished.headers)
    if fwd.selection.rule.session is not None:
        add_session_field(proxy.sessions, fwd, ex.endpoint, headers)
    done = conn.done
    assert done is not None
    # When the response's end came with its head (most responses), when the head went
    # out does not matter (no body time; ``reqsplit.split``): no clock read, and the flow
    # says the end is its first mark (``Exchange.plain``).
    ended = done.done()
    late = ex.timed and not ended
    if late:
        ex.rare()
        ex.t_head_out = now()
    if status == 101 and ex.upgrade:
        headers.append((b"connection", b"Upgrade"))
        headers.extend((n, v) for n, v in head.headers if n.lower() == b"upgrade")
        down.head(101, head.reason, headers, BodyKind.NONE, None)
        transport = conn.transport
        assert transport is not None
        # A client slower than the backend pauses the backend, as for any response.
        down.pause_source(transport.pause_reading, transport.resume_reading)
        to_client = down.tunnel(conn.write, conn.close)
        conn.attach(to_client)
        conn.on_close = down.abort
        return 101
    down.head(status, head.reason, headers, head.body, head.length)
    transport = conn.transport
    if transport is not None:
        down.pause_source(transport.pause_reading, transport.resume_reading)
    conn.attach(down.data)
    if not ended:
        down.flush()
    try:
        await done
    except UpstreamFailure:
        down.abort()
        error = UpstreamError.RESET_AFTER_SEND
        raise Failed(502, "backend reset the response", error) from None
    except BaseException:  # a timeout or the client went away
        conn.abort()
        raise
    finally:
        down.pause_source(None, None)
    if late:
        ex.t_last = conn.end_at or now()
    down.end()
    if ex.upgrade:
        conn.close()
    else:
        proxy.pool.release(conn)
    return status


def upstream_request_head(
    ex: Exchange, request: Request, trust_gateway_clients: bool = False
) -> tuple[bytes, bool]:
    head, chunked = upstream_head(ex, request, trust_gateway_clients)
    if request.scheme == "https":
        head = head.replace(b"\r\nX-Forwarded-Proto: http\r\n", b"\r\nX-Forwarded-Proto: https\r\n")
    return head, chunked


def _chunked_writer(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    return lambda data: write(chunk(data))


def _request_end(
    conn: Http1Upstream, body: RequestBody, chunked: bool, ex: Exchange | None = None
) -> Callable[[], None]:
    """The body's end: the last chunk if chunked; the request is owed nothing more once
    every declared byte went (a short Content-Length body leaves the backend waiting).
    It came after the request went upstream: until then the backend waited on the client
    (``Exchange.body_ended``)."""

    def end() -> None:
        if ex is not None:
            ex.body_ended()
        if chunked:
            conn.write(LAST_CHUNK)
            conn.finish_request()
        elif body.kind is not BodyKind.LENGTH or body.size == body.length:
            conn.finish_request()

    return end


def raw_headers(headers: Headers) -> RawHeaders:
    """Response fields after the route's filters, without framing and hop-by-hop fields:
    the waypoint writes those for its own hop, so a filter that sets Transfer-Encoding
    beside the waypoint's Content-Length cannot give the client two framings."""
    return [
        (n.encode("latin-1"), v.encode("latin-1"))
        for n, v in headers
        if n.lower() not in HOP_BY_HOP
    ]
