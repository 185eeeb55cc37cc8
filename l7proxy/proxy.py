"""The waypoint's per-request logic, shared by the HTTP/1.1 and HTTP/2 front ends:
route (``RouteTables.route``), answer locally or forward with the rule's timeouts and
retries, copy to mirrors, and record a flow and metrics. No sockets: upstream
connections come from the pool (``upstream.py``), the client is a ``Downstream``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from l7proxy.config import Limits, WaypointConfig
from l7proxy.exchange import Downstream, Exchange, RawHeaders, RequestBody, upstream_head
from l7proxy.flows import FlowRecorder, now_ns
from l7proxy.http.parser import BodyKind
from l7proxy.http.response import ResponseHead, upgrade_refusal
from l7proxy.http.wire import HOP_BY_HOP, LAST_CHUNK, chunk, end_to_end
from l7proxy.metrics import WaypointMetrics
from l7proxy.routing import (
    Answer,
    BackendTarget,
    Forward,
    GatewayParent,
    Headers,
    Parent,
    Request,
    Respond,
    Response,
    RouteTables,
    RuleRef,
    ServiceParent,
    UpstreamError,
)
from l7proxy.routing.types import host_of
from l7proxy.upstream import Address, Connector, Http1Upstream, Pool, UpstreamFailure

_DROPPED_ANSWERS = {
    Answer.NO_ROUTE: "NO_ROUTE",
    Answer.INVALID_BACKEND: "INVALID_BACKEND",
    Answer.NO_BACKEND: "NO_BACKEND",
    Answer.UNSUPPORTED_FILTER: "UNSUPPORTED_FILTER",
    Answer.INVALID_PATH: "INVALID_PATH",
    Answer.INVALID_REQUEST: "INVALID_REQUEST",
}
_DROPPED_ERRORS = {
    UpstreamError.CONNECT_FAILED: "UPSTREAM_CONNECT_FAILED",
    UpstreamError.CONNECT_TIMEOUT: "UPSTREAM_CONNECT_FAILED",
    UpstreamError.REFUSED_STREAM: "UPSTREAM_REFUSED_STREAM",
    UpstreamError.BACKEND_TIMEOUT: "UPSTREAM_TIMEOUT",
    UpstreamError.RESET_AFTER_SEND: "UPSTREAM_RESET",
}
_CLUSTER_SUFFIXES = (".svc.cluster.local", ".svc")
_POLICY_DENIED_BODY = b"NetworkPolicy denies this client the backend\n"


class Failed(Exception):
    """A try ended without a response the client can get: answer ``status``."""

    def __init__(
        self,
        status: int,
        reason: str,
        error: UpstreamError,
        *,
        drop: str = "",
        close: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.close = close
        """The client connection closes after the answer."""
        self.drop = drop or (
            _DROPPED_ERRORS[error]
            if status != 503 or "no endpoints" not in reason
            else ("SERVICE_BACKEND_NOT_FOUND")
        )


class Proxy:
    """Everything a worker shares across connections."""

    def __init__(
        self,
        config: WaypointConfig,
        *,
        connector: Connector | None = None,
        flows: FlowRecorder | None = None,
        metrics: WaypointMetrics | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.tables: RouteTables = config.tables
        self.endpoints = config.endpoints
        self.limits: Limits = config.limits
        self.connector = connector or Connector(connect_timeout=config.limits.connect_timeout)
        self.pool = Pool(
            self.connector,
            max_per_endpoint=config.limits.max_upstream_per_endpoint,
            idle_timeout=config.limits.upstream_idle_timeout,
            wait_timeout=config.limits.pool_wait_timeout,
        )
        self.flows = flows or FlowRecorder(None, node_name=config.node_name)
        self.metrics = metrics or WaypointMetrics(lambda: self.pool.stats)
        self.rng = rng
        self.admits = config.admits
        self.mirrors_in_flight = 0
        self.h2: object | None = None
        """The HTTP/2 upstream client (``h2.H2Upstreams``), set by the server."""
        self._rr: dict[BackendTarget, int] = {}
        self._labels: dict[tuple[RuleRef, BackendTarget], tuple[str, str, str]] = {}

    # --- configuration updates ---------------------------------------------------------

    def update(self, tables: RouteTables | None = None, endpoints: object | None = None) -> None:
        """Swap in new route tables and/or an endpoint resolver; requests already routed
        finish with what they had."""
        if tables is not None:
            self.tables = tables
            self._labels.clear()
        if endpoints is not None:
            assert callable(endpoints)
            self.endpoints = endpoints

    # --- per request -------------------------------------------------------------------

    def parent_for(self, ex: Exchange) -> Parent | None:
        if ex.parent is not None:
            return ex.parent
        parent = self.tables.parent_for_address(*ex.local)
        if parent is not None or self.config.original_destination is not None:
            # Behind redirection the original destination alone decides: a Host header
            # must not reach a Service the client never dialled.
            return parent
        host, _, port = ex.authority.partition(":")
        for suffix in _CLUSTER_SUFFIXES:
            if host.endswith(suffix):
                host = host[: -len(suffix)]
                break
        name, dot, namespace = host.partition(".")
        if not dot or "." in namespace:
            return None
        return ServiceParent(namespace, name, int(port) if port.isdigit() else ex.local[1])

    def route(self, ex: Exchange, scheme: str = "http") -> Forward | Respond:
        parent = self.parent_for(ex)
        headers = Headers([(n.decode("latin-1"), v.decode("latin-1")) for n, v in ex.headers])
        ex.routed_headers = headers
        request = Request(ex.method, scheme, ex.authority, ex.target, headers)
        if parent is None:
            from l7proxy.routing.actions import error_response

            return Respond(error_response(404, "no route"), Answer.NO_ROUTE, None, "no parent")
        namespace_of = self.config.client_namespace
        client_namespace = namespace_of(ex.client[0]) if namespace_of is not None else None
        return self.tables.route(parent, request, rng=self.rng, client_namespace=client_namespace)

    async def handle(self, ex: Exchange, down: Downstream) -> None:
        """Serve one request to completion (or failure) and account for it."""
        metrics = self.metrics
        metrics.in_flight += 1
        route = rule = backend = drop = ""
        status = 0
        try:
            tls = getattr(down, "tls", None)
            if tls is not None and self._misdirected(ex, tls.listener):
                status, drop = 421, "MISDIRECTED_REQUEST"
                body = f"{host_of(ex.authority)} is not served by the TLS server name\n"
                down.local(status, [(b"content-type", b"text/plain")], body.encode(), close=True)
                return
            decision = self.route(ex, down.scheme)
            if isinstance(decision, Respond):
                selection = decision.selection
                if selection is not None:
                    ref = selection.ref
                    route, rule = f"{ref.namespace}/{ref.route}", str(ref)
                response = decision.response
                status = response.status
                drop = _DROPPED_ANSWERS.get(decision.answer, "")
                down.local(
                    status, _raw(response.headers), response.body, close=not ex.body.complete
                )
                return
            key = (decision.selection.ref, decision.backend)
            labels = self._labels.get(key)
            if labels is None:
                ref = key[0]
                labels = self._labels[key] = (f"{ref.namespace}/{ref.route}", str(ref), str(key[1]))
            route, rule, backend = labels
            if not self._admitted(ex.client, decision.backend, any_endpoints=False):
                status, drop = 403, "POLICY_DENIED"
                down.local(
                    status,
                    [(b"content-type", b"text/plain")],
                    _POLICY_DENIED_BODY,
                    close=not ex.body.complete,
                )
                return
            for mirror in decision.mirrors:
                if self._admitted(ex.client, mirror.target, any_endpoints=True):
                    self._mirror(mirror.target, mirror.request, ex)
            try:
                status = await self.forward(ex, decision, down)
            except Failed as failure:
                status, drop = failure.status, failure.drop
            except asyncio.CancelledError:
                # nginx's code for a client gone, unless the client side said why it ended
                status, drop = ex.aborted or (499, "CLIENT_CLOSED")
                raise
        finally:
            metrics.in_flight -= 1
            elapsed = asyncio.get_running_loop().time() - ex.started
            metrics.observe(route, backend, status, elapsed)
            if self.flows.enabled:
                self.flows.record(
                    (
                        ex.started_ns,
                        int(elapsed * 1e9),
                        status,
                        ex.method,
                        f"{down.scheme}://{ex.authority}{ex.target}",
                        down.protocol,
                        route,
                        rule,
                        backend,
                        drop,
                        ex.client,
                        ex.local,
                        "",
                    )
                )

    def _admitted(self, client: Address, target: BackendTarget, *, any_endpoints: bool) -> bool:
        """Whether NetworkPolicy lets ``client`` reach some endpoint of ``target``. A target
        without endpoints counts as admitted unless ``any_endpoints`` (its 503 follows)."""
        admits = self.admits
        if admits is None:
            return True
        endpoints = self.endpoints(target)
        if not endpoints:
            return not any_endpoints
        return any(admits(client, e) for e in endpoints)

    def refuse(self, client: Address, local: Address, drop: str) -> None:
        """Record a connection refused before any request (reset by the caller)."""
        if self.flows.enabled:
            self.flows.record((now_ns(), 0, 0, "", "", "", "", "", "", drop, client, local, ""))

    def _misdirected(self, ex: Exchange, sni_listener: str | None) -> bool:
        """Over TLS, a Host whose listener is not the one SNI chose (Gateway API: 421)."""
        parent = ex.parent
        table = self.tables.gateways.get(parent) if isinstance(parent, GatewayParent) else None
        if table is None:
            return False
        hosted = table.listener_for(host_of(ex.authority))
        return hosted is None or hosted.info.name != sni_listener

    async def forward(self, ex: Exchange, fwd: Forward, down: Downstream) -> int:
        """Send ``fwd.request`` upstream with retries; stream the answer to ``down``.
        Returns the status sent; raises Failed when the proxy must answer an error."""
        timeouts = fwd.timeouts
        deadline = ex.started + timeouts.request if timeouts.request else None
        if ex.expect_continue and not ex.body.complete:
            down.continue_()
        try:
            if deadline is None:
                return await self._upstream(ex, fwd, down, None)
            async with asyncio.timeout_at(deadline):
                return await self._upstream(ex, fwd, down, deadline)
        except TimeoutError:
            if down.started:
                down.abort()
                return 504
            return self._fail(down, Failed(504, "request timeout", UpstreamError.BACKEND_TIMEOUT))
        except Failed as failure:
            return self._fail(down, failure)

    async def _upstream(
        self, ex: Exchange, fwd: Forward, down: Downstream, deadline: float | None
    ) -> int:
        h2 = self.h2
        if h2 is not None and (ex.grpc or self._speaks_h2(fwd.backend)):
            try:
                return await h2.forward(self, ex, fwd, down)  # type: ignore[attr-defined,no-any-return]
            except UpstreamFailure as exc:
                error = UpstreamError.RESET_AFTER_SEND if exc.sent else UpstreamError.CONNECT_FAILED
                raise Failed(502 if exc.sent else 503, str(exc), error) from exc
        return await self._tries(ex, fwd, down, deadline)

    def _fail(self, down: Downstream, failure: Failed) -> int:
        if down.started:
            down.abort()
        else:
            body = (str(failure) + "\n").encode()
            down.local(
                failure.status, [(b"content-type", b"text/plain")], body, close=failure.close
            )
        raise failure

    async def _tries(
        self, ex: Exchange, fwd: Forward, down: Downstream, deadline: float | None
    ) -> int:
        policy = fwd.retry
        backend_timeout = fwd.timeouts.backend_request
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            attempt += 1
            outcome: int | UpstreamError
            try:
                if backend_timeout is None:
                    status, wait = await self._attempt(ex, fwd, down, attempt, deadline)
                else:
                    async with asyncio.timeout(backend_timeout):
                        status, wait = await self._attempt(ex, fwd, down, attempt, deadline)
                if wait is None:
                    return status
                await asyncio.sleep(wait)
                continue
            except UpstreamFailure as exc:
                if down.started:
                    raise Failed(502, str(exc), UpstreamError.RESET_AFTER_SEND) from exc
                outcome = (
                    UpstreamError.RESET_AFTER_SEND if exc.sent else UpstreamError.CONNECT_FAILED
                )
                failure = Failed(502 if exc.sent else 503, str(exc), outcome, drop=exc.drop)
            except TimeoutError as exc:
                if down.started or deadline is not None and loop.time() >= deadline:
                    raise
                outcome = UpstreamError.BACKEND_TIMEOUT
                failure = Failed(504, "backend request timeout", outcome)
                failure.__cause__ = exc
            if policy is None or not ex.body.replayable:
                raise failure
            remaining = deadline - loop.time() if deadline is not None else None
            wait = policy.should_retry(attempt, outcome, draw=self.rng(), remaining=remaining)
            if wait is None:
                raise failure
            await asyncio.sleep(wait)

    async def _attempt(
        self, ex: Exchange, fwd: Forward, down: Downstream, attempt: int, deadline: float | None
    ) -> tuple[int, float | None]:
        """One try: (status sent, None), or (status, delay) when it is to be retried."""
        conn, head = await self._send(ex, fwd)
        policy = fwd.retry
        if policy is not None and head.status in policy.codes and ex.body.replayable:
            now = asyncio.get_running_loop().time()
            remaining = deadline - now if deadline is not None else None
            wait = policy.should_retry(attempt, head.status, draw=self.rng(), remaining=remaining)
            if wait is not None:
                ex.body.detach()
                self._discard(conn)
                return head.status, wait
        return await self._stream(ex, fwd, conn, head, down), None

    def _discard(self, conn: Http1Upstream) -> None:
        if conn.done is not None and conn.done.done():
            self.pool.release(conn)
        else:
            conn.abort()

    def _speaks_h2(self, target: BackendTarget) -> bool:
        protocols = self.config.protocols
        return (
            bool(protocols) and protocols.get((target.namespace, target.name, target.port)) == "h2c"
        )

    def pick(self, target: BackendTarget, client: Address) -> Address:
        """The next endpoint of ``target`` that NetworkPolicy lets ``client`` reach."""
        endpoints: Sequence[Address] = self.endpoints(target)
        admits = self.admits
        if admits is not None and endpoints:
            endpoints = [e for e in endpoints if admits(client, e)]
            if not endpoints:  # policy changed since handle() checked
                raise UpstreamFailure(f"no endpoints for {target} admit the client", sent=False)
        if not endpoints:
            raise UpstreamFailure(f"no endpoints for {target}", sent=False)
        i = self._rr.get(target, 0)
        self._rr[target] = i + 1
        return endpoints[i % len(endpoints)]

    async def _send(self, ex: Exchange, fwd: Forward) -> tuple[Http1Upstream, ResponseHead]:
        """One try: a connection, the request written, the response head read. A pooled
        connection that the backend closed while idle is replaced (up to three times)."""
        address = self.pick(fwd.backend, ex.client)
        body = ex.body
        for _ in range(3):
            if ex.upgrade:
                conn = await self.connector.connect(address, lambda: Http1Upstream(address))
            else:
                conn = await self.pool.acquire(address)
            reused = conn.requests > 0
            head_bytes, chunked = _upstream_head(ex, fwd.request)
            if body.complete or not body.kept:
                payload = b"".join(body.chunks) if body.complete else b""
            elif chunked:
                payload = b"".join(chunk(c) for c in body.chunks)
            else:
                payload = b"".join(body.chunks)
            future = conn.begin(
                head_bytes + payload, complete=body.complete, head_request=ex.method == "HEAD"
            )
            if not body.complete:
                # The rest of the body follows as it arrives, also after the response head
                # (until the response ends); the connection is reusable only if it all went.
                conn.on_pause, conn.on_resume = body.pause, body.resume
                write = _chunked_writer(conn.write) if chunked else conn.write
                body.attach(write, _request_end(conn, body, chunked))
            try:
                head = await future
            except UpstreamFailure:
                body.detach()
                conn.abort()
                if reused and not conn.received and body.replayable:
                    continue
                raise
            except BaseException:
                body.detach()
                conn.abort()
                raise
            return conn, head
        raise UpstreamFailure(f"backend {address[0]}:{address[1]} keeps closing", sent=True)

    async def _stream(
        self, ex: Exchange, fwd: Forward, conn: Http1Upstream, head: ResponseHead, down: Downstream
    ) -> int:
        try:
            return await self._respond(ex, fwd, conn, head, down)
        finally:
            ex.body.detach()  # the response ended: send no more of the body on ``conn``

    async def _respond(
        self, ex: Exchange, fwd: Forward, conn: Http1Upstream, head: ResponseHead, down: Downstream
    ) -> int:
        if head.status == 101:
            problem = upgrade_refusal(ex.upgrade, ex.headers, head)
            if problem:
                conn.abort()
                error = UpstreamError.RESET_AFTER_SEND
                raise Failed(502, problem, error, drop="UPSTREAM_PROTOCOL_ERROR", close=True)
        status = head.status
        headers = end_to_end(head.headers)
        if fwd.response_steps:
            finished = fwd.finish(Response(status, Headers.from_raw(headers)))
            status, headers = finished.status, _raw(finished.headers)
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
        done = conn.done
        assert done is not None
        if not done.done():
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
        down.end()
        if ex.upgrade:
            conn.close()
        else:
            self.pool.release(conn)
        return status

    # --- mirrors -----------------------------------------------------------------------

    def _mirror(self, target: BackendTarget, request: Request, ex: Exchange) -> None:
        if self.mirrors_in_flight >= self.limits.max_mirrors_in_flight:
            return
        self.mirrors_in_flight += 1
        asyncio.get_running_loop().create_task(self._send_mirror(target, request, ex))

    async def _send_mirror(self, target: BackendTarget, request: Request, ex: Exchange) -> None:
        try:
            async with asyncio.timeout(30.0):
                await ex.body.wait()
                if not ex.body.kept:
                    return
                address = self.pick(target, ex.client)
                conn = await self.pool.acquire(address)
                mirror = Exchange(
                    ex.method,
                    request.target,
                    request.authority,
                    ex.headers,
                    ex.body,
                    None,
                    ex.client,
                    ex.local,
                    started=ex.started,
                    started_ns=ex.started_ns,
                )
                head, _ = _upstream_head(mirror, request)
                future = conn.begin(
                    head + b"".join(ex.body.chunks), complete=True, head_request=ex.method == "HEAD"
                )
                await future
                conn.attach(lambda _: None)
                assert conn.done is not None
                await conn.done
                self.pool.release(conn)
        except (UpstreamFailure, TimeoutError, OSError):
            pass
        finally:
            self.mirrors_in_flight -= 1


def _upstream_head(ex: Exchange, request: Request) -> tuple[bytes, bool]:
    head, chunked = upstream_head(ex, request)
    if request.scheme == "https":
        head = head.replace(b"\r\nX-Forwarded-Proto: http\r\n", b"\r\nX-Forwarded-Proto: https\r\n")
    return head, chunked


def _chunked_writer(write: Callable[[bytes], None]) -> Callable[[bytes], None]:
    return lambda data: write(chunk(data))


def _request_end(conn: Http1Upstream, body: RequestBody, chunked: bool) -> Callable[[], None]:
    """The body's end: the last chunk if chunked; the request is owed nothing more once
    every declared byte went (a short Content-Length body leaves the backend waiting)."""

    def end() -> None:
        if chunked:
            conn.write(LAST_CHUNK)
            conn.finish_request()
        elif body.kind is not BodyKind.LENGTH or body.size == body.length:
            conn.finish_request()

    return end


def _raw(headers: Headers) -> RawHeaders:
    """Response fields after the route's filters, without framing and hop-by-hop fields:
    the waypoint writes those for its own hop, so a filter that sets Transfer-Encoding
    beside the waypoint's Content-Length cannot give the client two framings."""
    return [
        (n.encode("latin-1"), v.encode("latin-1"))
        for n, v in headers
        if n.lower() not in HOP_BY_HOP
    ]
