"""TLSRoute connections on a Gateway's TLS listeners (``gatewayapi.tlsroutes``).

Passthrough: the waypoint reads the ClientHello without answering it
(``l7proxy.clienthello``), chooses the listener and route by its server name, picks a
weighted backend and one of its endpoints (NetworkPolicy and outlier detection as for
HTTP, ``Proxy.pick``), sends the bytes it read, then splices both directions: the client
and the backend do their own handshake, so the client sees the backend's certificate.

Terminate: the same choice, then the waypoint completes the handshake with the listener's
certificates (no ALPN offered: the stream is only TCP to the Gateway API) and forwards the
plaintext both ways.

Refusals close the connection (the Gateway API's answer for a connection no route takes)
and each is one DROPPED flow naming why: no ClientHello within the header timeout
(``TLS_CLIENT_HELLO_TIMEOUT``, a client that sends nothing), a malformed, oversized or
non-TLS first flight (``l7proxy.clienthello``), no route for the server name or no server
name (``TLS_NO_ROUTE``), an invalid backend chosen by weight (``TLS_BACKEND_INVALID``, as
the spec asks: rejections respect weights), no endpoint or a failed connect
(``UPSTREAM_CONNECT_FAILED`` or the hop's reason), a failed or unfinished handshake in
Terminate mode (``TLS_HANDSHAKE_FAILED``, ``TLS_HANDSHAKE_TIMEOUT``). A connection routed
is one FORWARDED flow when it is spliced.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from typing import TYPE_CHECKING

from agent.model.gateway import TLSMode
from gatewayapi.types import GatewayParent
from l7proxy.clienthello import ClientHelloError, ClientHelloReader
from l7proxy.flows import now_ns
from l7proxy.tlscerts import CertificateError, certificate_context
from l7proxy.upstream import UpstreamFailure

if TYPE_CHECKING:
    from gatewayapi.tlsroutes import TlsChoice, TlsListener
    from l7proxy.server import WaypointServer

log = logging.getLogger("tulle.waypoint")
Address = tuple[str, int]
HELLO_TIMEOUT = "TLS_CLIENT_HELLO_TIMEOUT"
NO_ROUTE = "TLS_NO_ROUTE"
BACKEND_INVALID = "TLS_BACKEND_INVALID"
CONNECT_FAILED = "UPSTREAM_CONNECT_FAILED"
HANDSHAKE_FAILED = "TLS_HANDSHAKE_FAILED"
HANDSHAKE_TIMEOUT = "TLS_HANDSHAKE_TIMEOUT"
HIGH_WATER = 256 * 1024


class TlsContexts:
    """Server contexts of Terminate listeners, by their certificate Secrets; built once per
    set and content (a Secret's update builds a new one)."""

    def __init__(self) -> None:
        self._made: dict[tuple[object, ...], ssl.SSLContext | str] = {}

    def get(self, server: WaypointServer, listener: TlsListener) -> ssl.SSLContext | str:
        certificates = server.config.certificates
        missing = [ref for ref in listener.certificates if ref not in certificates]
        if missing or not listener.certificates:
            return f"Secret {'/'.join(missing[0])} not found" if missing else "no certificate"
        pairs = tuple((ref, certificates[ref]) for ref in listener.certificates)
        made = self._made.get(pairs)
        if made is None:
            try:
                made = certificate_context(pairs, alpn=())
            except CertificateError as exc:
                made = str(exc)
            if len(self._made) > 256:  # stale sets of rotated Secrets
                self._made.clear()
            self._made[pairs] = made
        return made


class TlsRouteConnection(asyncio.Protocol):
    """One client connection on a TLS listener: ClientHello, choice, then the splice."""

    def __init__(
        self,
        server: WaypointServer,
        transport: asyncio.Transport,
        parent: GatewayParent,
        client: Address,
        local: Address,
    ) -> None:
        self.server = server
        self.transport = transport
        self.parent = parent
        self.client = client
        self.local = local
        self.reader: ClientHelloReader | None = ClientHelloReader()
        self.server_name: str | None = None
        self.started_ns = now_ns()
        self.upstream: asyncio.Transport | None = None
        self.tls: ssl.SSLObject | None = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.pending: list[bytes] = []
        self.choice: TlsChoice | None = None
        self.handshaken = False
        self.closed = False
        loop = asyncio.get_running_loop()
        timeout = server.config.limits.header_timeout
        self.timer: asyncio.TimerHandle | None = loop.call_later(timeout, self._timed_out)
        self.task: asyncio.Task[None] | None = None
        transport.set_protocol(self)

    # --- from the client ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.reader is not None:
            self._hello(data)
        elif self.tls is not None:
            self.incoming.write(data)
            self._tls_progress()
        elif self.upstream is not None:
            self.upstream.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool | None:
        if self.tls is None and self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()
            return True  # half-close: the backend may still answer
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reader is not None and not self.closed:
            self.closed = True
            self._cancel_timer()
            return  # the client left before a ClientHello: nothing to route, no flow
        self.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and not self.closed:
            self.upstream.resume_reading()

    # --- the ClientHello and the choice ----------------------------------------------

    def _hello(self, data: bytes) -> None:
        assert self.reader is not None
        try:
            hello = self.reader.feed(data)
        except ClientHelloError as exc:
            self._refuse(exc.reason, str(exc))
            return
        if hello is None:
            return
        received = bytes(self.reader.received)
        self.reader = None
        self._cancel_timer()
        self.server_name = hello.server_name
        table = self.server.proxy.tables.tls.get(self.parent)
        choice = table.select(hello.server_name) if table is not None else None
        if choice is None or choice.rule is None:
            name = hello.server_name or "(no server name)"
            self._refuse(NO_ROUTE, f"no TLSRoute on Gateway {self.parent.namespace}/"
                                   f"{self.parent.name} port {self.parent.port} for {name}")
            return
        if choice.listener.mode is TLSMode.TERMINATE:
            context = TERMINATE_CONTEXTS.get(self.server, choice.listener)
            if isinstance(context, str):
                self._refuse(HANDSHAKE_FAILED, f"listener {choice.listener.name}: {context}")
                return
            self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
            self.choice = choice
            self.timer = asyncio.get_running_loop().call_later(
                self.server.config.limits.header_timeout, self._timed_out
            )
            self.incoming.write(received)
            self._tls_progress()
            return
        self.pending.append(received)
        self._connect(choice)

    def _connect(self, choice: TlsChoice) -> None:
        self.transport.pause_reading()  # what comes while connecting waits in the socket
        self.task = asyncio.get_running_loop().create_task(self._open(choice))

    async def _open(self, choice: TlsChoice) -> None:
        rule = choice.rule
        assert rule is not None
        index = rule.choice.pick(random.random())
        backend = rule.backends[index] if index is not None else None
        ref = rule.ref
        route = f"{ref.namespace}/{ref.route}"
        if backend is None or backend.target is None:
            why = backend.problem if backend is not None else "every backend has weight 0"
            self._refuse(BACKEND_INVALID, why, route, str(ref))
            return
        target = backend.target
        proxy = self.server.proxy
        try:
            endpoint = proxy.pick(target, self.client)
            connector = proxy.connector
            hop = connector.via(self.client, endpoint)
            upstream = await connector.connect(
                endpoint, lambda: _Upstream(self), via=hop, client=self.client
            )
        except UpstreamFailure as exc:
            self._refuse(exc.drop or CONNECT_FAILED, str(exc), route, str(ref), str(target))
            return
        if self.closed:
            upstream.close()
            return
        assert upstream.transport is not None
        self.upstream = upstream.transport
        for data in self.pending:
            self.upstream.write(data)
        self.pending.clear()
        self._record("", route, str(ref), str(target))
        self.transport.resume_reading()
        if self.tls is not None:
            self._tls_progress()  # what was decrypted, or is buffered, while connecting

    # --- Terminate -----------------------------------------------------------------------

    def _tls_progress(self) -> None:
        """Advance the handshake, or move decrypted bytes to the backend."""
        tls = self.tls
        assert tls is not None
        if not self.handshaken:
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                return
            except (ssl.SSLError, OSError) as exc:
                self._flush_tls()
                self._refuse(HANDSHAKE_FAILED, f"TLS handshake failed: {exc}")
                return
            self._flush_tls()
            self._cancel_timer()
            self.handshaken = True
            assert self.choice is not None
            self._connect(self.choice)
            return
        if self.upstream is None:
            return  # connecting: the ciphertext waits in the BIO
        chunks = []
        try:
            while True:
                chunk = tls.read(HIGH_WATER)
                if not chunk:
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:  # close_notify: the client is done sending
            if chunks:
                self.upstream.write(b"".join(chunks))
            if self.upstream.can_write_eof():
                self.upstream.write_eof()
            return
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS route %s: %s", self.parent, exc)
            self.close()
            return
        if chunks:
            self.upstream.write(b"".join(chunks))
        self._flush_tls()

    def _flush_tls(self) -> None:
        data = self.outgoing.read()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def to_client(self, data: bytes) -> None:
        if self.tls is None:
            self.transport.write(data)
            return
        try:
            self.tls.write(data)
        except (ssl.SSLError, OSError):
            self.close()
            return
        self._flush_tls()

    def upstream_eof(self) -> None:
        if self.tls is not None:
            try:
                self.tls.unwrap()
            except (ssl.SSLError, OSError):
                pass
            self._flush_tls()
            self.close()
        elif self.transport.can_write_eof():
            self.transport.write_eof()

    # --- ends ------------------------------------------------------------------------

    def _timed_out(self) -> None:
        self.timer = None
        seconds = self.server.config.limits.header_timeout
        if self.reader is not None:
            self._refuse(HELLO_TIMEOUT, f"no complete ClientHello within {seconds:g}s")
        else:
            self._refuse(HANDSHAKE_TIMEOUT, f"TLS handshake not done within {seconds:g}s")

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _refuse(self, reason: str, message: str, route: str = "", rule: str = "",
                backend: str = "") -> None:
        self._record(reason, route, rule, backend, message)
        self.close(abort=True)

    def _record(self, drop: str, route: str, rule: str, backend: str, summary: str = "") -> None:
        flows = self.server.flows
        if not flows.enabled:
            return
        host = self.server_name or self.local[0]
        flows.record((self.started_ns, now_ns() - self.started_ns, 0, "",
                      f"tls://{host}:{self.parent.port}", "TLS", route, rule, backend, drop,
                      self.client, self.local, summary[:200], None, None, None, None))

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
        if self.upstream is not None:
            self.upstream.close()


class _Upstream(asyncio.Protocol):
    """The backend side of a TLSRoute connection."""

    def __init__(self, down: TlsRouteConnection) -> None:
        self.down = down
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.down.to_client(data)

    def eof_received(self) -> bool | None:
        self.down.upstream_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.down.close()

    def pause_writing(self) -> None:
        self.down.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.down.closed:
            self.down.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


TERMINATE_CONTEXTS = TlsContexts()
