"""The sending end's connections, pooled per (source SPIFFE ID, destination SPIFFE ID, peer
waypoint).

A connection presents the client pod's SVID, so it may only carry that identity's streams;
it asks the peer (SNI: ``identities.sni_name``) for the destination pod's identity and is
refused here unless the peer's SVID names exactly that identity (MTLS_WRONG_IDENTITY: a
node, or anyone on the fabric, holding some other valid SVID cannot terminate it), so it
may only carry streams to that identity's pods too.
`stream` reuses a connection with room under the peer's MAX_CONCURRENT_STREAMS, else dials
a new one; concurrent callers wait for one dial in progress instead of each dialling (N
connections at once cost one handshake). A connection is ready once the peer's SETTINGS
arrived: with TLS 1.3 the server judges the client's certificate after the client's side of
the handshake completed, so a refusal shows as the connection closing before SETTINGS.
A dead connection leaves the pool when it closes; an idle one after ``idle_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from identity.bundle import SvidError
from identity.hbone import ALPN_H2
from l7proxy.hbone import refusal
from l7proxy.hbone.ends import Address, Dial, dialer
from l7proxy.hbone.identities import SvidDirectory, peer_identity, sni_name
from l7proxy.hbone.metrics import HboneMetrics
from l7proxy.hbone.tunnel import Fields, Stream, TunnelConnection

log = logging.getLogger("tulle.waypoint.hbone")
Key = tuple[str, str, Address]  # (source ID, destination ID, peer waypoint)
SIDE = "client"


class TunnelError(ConnectionError):
    """No stream could be opened; ``reason`` is the drop reason, ``decided`` whether this
    end decided it (False: the peer refused, and reports it)."""

    def __init__(self, reason: str, detail: str, decided: bool = True) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.decided = decided


class TunnelPool:
    def __init__(
        self,
        svids: SvidDirectory,
        *,
        dial: Dial | None = None,
        metrics: HboneMetrics | None = None,
        idle_timeout: float = 60.0,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.svids = svids
        self.dial = dial or dialer()
        self.metrics = metrics or HboneMetrics()
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.connections: dict[Key, list[TunnelConnection]] = {}
        self._dialling: dict[Key, asyncio.Future[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def stream(
        self, spiffe_id: str, destination_id: str, peer: Address, fields: Fields
    ) -> Stream:
        """A new CONNECT stream to ``peer`` presenting ``spiffe_id``, on a connection whose
        peer proved ``destination_id``; TunnelError if not."""
        conn = await self._connection((spiffe_id, destination_id, peer))
        return conn.open_stream(fields)

    def _current(self, spiffe_id: str) -> tuple[int, tuple[object, ...]]:
        """What a connection for ``spiffe_id`` must have been made with to take new
        streams: the SVID's serial now held, and the bundle's roots now trusted."""
        creds = self.svids.current
        if creds is None:
            return 0, ()
        held = creds.held.get(spiffe_id)
        return (held.serial if held is not None else 0), creds.bundle.roots

    async def _connection(self, key: Key) -> TunnelConnection:
        while True:
            # A connection made with a certificate since rotated, or verified under a bundle
            # since changed, takes no new streams: its open ones finish, and the sweeper
            # closes it once idle.
            current = self._current(key[0])
            for conn in self.connections.get(key, ()):
                if (conn.local_serial, conn.roots) == current and conn.capacity() > 0:
                    return conn
            pending = self._dialling.get(key)
            if pending is not None:
                await asyncio.shield(pending)  # its failure is ours too
                continue
            future = self._dialling[key] = asyncio.get_running_loop().create_future()
            try:
                conn = await self._dial(key)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved even when nobody else waited
                raise
            finally:
                del self._dialling[key]
            if not future.done():
                future.set_result(None)
            self.connections.setdefault(key, []).append(conn)
            self._start_sweeper()
            return conn

    def _refused(self, reason: str, detail: str, decided: bool = True) -> TunnelError:
        self.metrics.handshake(SIDE, reason)
        return TunnelError(reason, detail, decided)

    async def _dial(self, key: Key) -> TunnelConnection:
        spiffe_id, destination_id, peer = key
        creds = self.svids.current
        ctx = creds.client_context(spiffe_id) if creds is not None else None
        if creds is None or ctx is None:
            raise TunnelError(refusal.NO_CERTIFICATE, f"no SVID held for {spiffe_id}")
        loop = asyncio.get_running_loop()
        try:
            sock = await self.dial(peer)
        except (OSError, TimeoutError) as exc:
            raise TunnelError(
                refusal.UPSTREAM_FAILED, f"peer waypoint {peer[0]}:{peer[1]} unreachable: {exc}"
            ) from exc
        try:
            transport, conn = await loop.create_connection(
                lambda: TunnelConnection(True),
                sock=sock,
                ssl=ctx,
                server_hostname=sni_name(destination_id),
                ssl_handshake_timeout=self.handshake_timeout,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            sock.close()
            raise self._refused(refusal.handshake_reason(exc), refusal.describe(exc)) from exc
        conn.local_serial, conn.roots = creds.held[spiffe_id].serial, creds.bundle.roots
        if transport.get_extra_info("ssl_object").selected_alpn_protocol() != ALPN_H2:
            conn.abort("no ALPN h2")
            raise self._refused(refusal.HANDSHAKE_FAILED, "the peer did not select ALPN h2")
        try:
            peer_svid, conn.peer_serial = peer_identity(
                transport.get_extra_info("ssl_object"), creds.bundle
            )
            conn.peer_id = str(peer_svid)
        except SvidError as exc:
            conn.abort("peer SVID refused")
            raise self._refused(refusal.svid_reason(exc.reason), str(exc)) from exc
        if conn.peer_id != destination_id:
            # Before any stream: nothing for the destination was sent to this peer.
            conn.abort("peer SVID names another identity")
            raise self._refused(
                refusal.WRONG_IDENTITY,
                f"the peer waypoint {peer[0]}:{peer[1]} presented {conn.peer_id}, not the "
                f"destination's {destination_id} (it holds no SVID for it, or is not its node)",
            )
        try:
            async with asyncio.timeout(self.handshake_timeout):
                await conn.ready
        except (ConnectionError, TimeoutError) as exc:
            conn.abort("no SETTINGS from the peer")
            lost = getattr(conn, "lost_exc", None)
            reason = refusal.handshake_reason(lost) if lost else refusal.HANDSHAKE_FAILED
            raise self._refused(
                reason,
                f"the peer closed the connection before HTTP/2 SETTINGS (it refused "
                f"this certificate?): {refusal.describe(lost) if lost else exc}",
                decided=False,
            ) from exc
        self.metrics.handshake(SIDE, "ok")
        self.metrics.connections[SIDE] += 1
        conn.on_close = lambda c: self._forget(key, c)
        return conn

    def _forget(self, key: Key, conn: TunnelConnection) -> None:
        conns = self.connections.get(key)
        if conns is not None and conn in conns:
            conns.remove(conn)
            self.metrics.connections[SIDE] -= 1
            if not conns:
                del self.connections[key]

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self.connections:
            await asyncio.sleep(max(self.idle_timeout / 2, 0.05))
            now = loop.time()
            for (spiffe_id, _, _), conns in list(self.connections.items()):
                current = self._current(spiffe_id)
                for conn in list(conns):
                    stale = (conn.local_serial, conn.roots) != current
                    if not conn.streams and (stale or now - conn.idle_since >= self.idle_timeout):
                        conn.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(BaseException):
                await self._sweeper
        for conns in list(self.connections.values()):
            for conn in list(conns):
                conn.abort("the waypoint is stopping")
