"""The receiving end: the 15008 listener (HBONE_PORT).

Per connection: the TLS 1.3 handshake with the current server context (OpenSSL verifies
the client's chain against the bundle), then the SPIFFE check of the client's SVID; a
refusal is a DROPPED event naming the reason (MTLS_*), decided here. Per CONNECT stream, in
order, each refusal answering that stream alone and emitting its event:

1. the head (``connecthead``): malformed -> 400/405/431, MTLS_HANDSHAKE_FAILED (a protocol
   failure: drop.h has no closer name);
2. the destination is a pod on this node (``is_local``) -> else 404,
   TUNNEL_DESTINATION_NOT_LOCAL;
3. on a connection the client opened for an identity (SNI: ``identities.sni_name``; this
   end presented that identity's SVID), the destination pod has that identity
   (``identity_of``) -> else 403, MTLS_WRONG_IDENTITY: a connection authenticated as one
   identity never reaches another's pods. Without SNI (a peer that does not ask) any local
   pod, as before;
4. the source pod named by ``Forwarded: for=`` has the SPIFFE ID of the client's certificate
   (``identity_of``) -> else 403, MTLS_WRONG_IDENTITY: a node may only speak for the
   identities it holds certificates for;
5. ``admit(source_ip, destination_ip, destination_port)`` (NetworkPolicy on the source pod)
   -> else 403, POLICY_DENIED;
6. the pod answers a connect (from ``dial``: the waypoint's address and mark) -> else 503,
   TUNNEL_UPSTREAM_FAILED; then 200, FORWARDED, and the bytes are spliced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from agent.flows.tunnelrecord import Side
from identity.bundle import SvidError
from identity.hbone import ALPN_H2, HBONE_PORT
from l7proxy.hbone import refusal
from l7proxy.hbone.connecthead import ConnectHead, HeadError, parse_connect
from l7proxy.hbone.ends import Address, Dial, EventSink, dialer, event
from l7proxy.hbone.identities import Credentials, SvidDirectory, peer_identity
from l7proxy.hbone.metrics import HboneMetrics
from l7proxy.hbone.splice import splice
from l7proxy.hbone.tunnel import DEFAULT_MAX_STREAMS, Fields, Stream, TunnelConnection

log = logging.getLogger("tulle.waypoint.hbone")
SIDE: Side = "server"


class HboneServer:
    """Accepts tunnels from other waypoints (and this node's own) and delivers them."""

    def __init__(
        self,
        svids: SvidDirectory,
        *,
        identity_of: Callable[[str], str | None],
        is_local: Callable[[str], bool],
        admit: Callable[[str, str, int], bool],
        on_event: EventSink,
        dial: Dial | None = None,
        metrics: HboneMetrics | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.svids = svids
        self.identity_of = identity_of
        self.is_local = is_local
        self.admit = admit
        self.on_event = on_event
        self.dial = dial or dialer()
        self.metrics = metrics or HboneMetrics()
        self.max_streams = max_streams
        self.handshake_timeout = handshake_timeout
        self.address: Address = ("", 0)
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[TunnelConnection] = set()

    async def start(
        self, host: str, port: int = HBONE_PORT, *, sock: socket.socket | None = None
    ) -> Address:
        """Listen on (host, port), or on ``sock`` when a holder passed it (l7proxy.listenfds)."""
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
        sock.setblocking(False)
        self._listener = sock
        self.address = sock.getsockname()
        self._spawn(self._accept_loop(sock))
        return self.address

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in list(self._connections):
            conn.abort("the waypoint is stopping")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(listener)
            except OSError as exc:
                if self._listener is None:
                    return
                log.warning("HBONE accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._handshake(sock, peer))

    def _refuse_connection(self, peer: Address, reason: str, detail: str) -> None:
        """A refused handshake names no pod (no stream was read): its flow goes from the
        dialling node's address to this listener, so it is still a flow the agent takes."""
        self.metrics.handshake(SIDE, reason)
        log.info("HBONE handshake from %s:%d refused: %s (%s)", *peer, reason, detail)
        self.on_event(
            event(
                SIDE,
                "DROPPED",
                reason,
                source=peer,
                destination=self.address,
                peer=peer,
                detail=detail,
            )
        )

    async def _handshake(self, sock: socket.socket, peer: Address) -> None:
        creds = self.svids.current
        if creds is None or creds.server is None:
            sock.close()
            self._refuse_connection(peer, refusal.HANDSHAKE_FAILED, "this node holds no SVID")
            return
        loop = asyncio.get_running_loop()

        def factory() -> TunnelConnection:
            conn = TunnelConnection(
                False,
                lambda stream, fields: self._on_request(peer, stream, fields),
                self.max_streams,
            )
            conn.on_made = lambda c: self._check_peer(c, peer, creds)
            return conn

        try:
            await loop.connect_accepted_socket(
                factory, sock, ssl=creds.server, ssl_handshake_timeout=self.handshake_timeout
            )
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            sock.close()
            self._refuse_connection(peer, refusal.handshake_reason(exc), refusal.describe(exc))

    def _check_peer(self, conn: TunnelConnection, peer: Address, creds: Credentials) -> bool:
        """At connection_made, before any byte of HTTP/2 is read (uvloop delivers data
        before the handshake's awaiter resumes): ALPN, then the SPIFFE check."""
        assert conn.transport is not None
        ssl_object = conn.transport.get_extra_info("ssl_object")
        if ssl_object.selected_alpn_protocol() != ALPN_H2:  # OpenSSL goes on without ALPN
            self._refuse_connection(
                peer, refusal.HANDSHAKE_FAILED, "the client did not offer ALPN h2"
            )
            return False
        try:
            spiffe_id, conn.peer_serial = peer_identity(ssl_object, creds.bundle)
        except SvidError as exc:
            self._refuse_connection(peer, refusal.svid_reason(exc.reason), str(exc))
            return False
        conn.peer_id = str(spiffe_id)
        conn.local_id = creds.presented(ssl_object)
        self.metrics.handshake(SIDE, "ok")
        self.metrics.connections[SIDE] += 1
        self._connections.add(conn)
        conn.on_close = self._closed
        return True

    def _closed(self, conn: TunnelConnection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self.metrics.connections[SIDE] -= 1

    def _on_request(self, peer: Address, stream: Stream, fields: Fields) -> None:
        self._spawn(self._serve_stream(stream.conn.peer_id, peer, stream, fields))

    def _refuse(
        self,
        stream: Stream,
        status: int,
        reason: str,
        detail: str,
        *,
        peer: Address,
        peer_id: str,
        head: ConnectHead | None = None,
        destination_id: str = "",
    ) -> None:
        stream.conn.respond(stream, status, end=True)
        self.metrics.stream_decided(SIDE, "DROPPED")
        self.on_event(
            event(
                SIDE,
                "DROPPED",
                reason,
                peer=peer,
                source_id=peer_id,
                detail=detail,
                source=head.source if head else peer,  # malformed: the dialling node
                destination=head.destination if head else self.address,
                destination_id=destination_id,
            )
        )

    async def _serve_stream(
        self, peer_id: str, peer: Address, stream: Stream, fields: Fields
    ) -> None:
        try:
            head = parse_connect(fields)
        except HeadError as exc:
            self._refuse(
                stream,
                exc.status,
                refusal.HANDSHAKE_FAILED,
                f"malformed CONNECT: {exc}",
                peer=peer,
                peer_id=peer_id,
            )
            return
        (src_ip, _), (dst_ip, dst_port) = head.source, head.destination
        dst_id = self.identity_of(dst_ip) or ""
        refuse = functools.partial(
            self._refuse, stream, peer=peer, peer_id=peer_id, head=head, destination_id=dst_id
        )
        if not self.is_local(dst_ip):
            refuse(404, refusal.NOT_LOCAL, f"{dst_ip} is not a pod on this node")
            return
        bound = stream.conn.local_id
        if bound and dst_id != bound:
            refuse(
                403,
                refusal.WRONG_IDENTITY,
                f"this connection was opened for {bound} (its server certificate); the "
                f"destination pod {dst_ip} is {dst_id or 'not known'}",
            )
            return
        src_id = self.identity_of(src_ip)
        if src_id != peer_id:
            refuse(
                403,
                refusal.WRONG_IDENTITY,
                f"the certificate names {peer_id}; the source "
                f"pod {src_ip} is {src_id or 'not known'}",
            )
            return
        if not self.admit(src_ip, dst_ip, dst_port):
            refuse(
                403, refusal.POLICY_DENIED, f"NetworkPolicy denies {src_ip} to {dst_ip}:{dst_port}"
            )
            return
        try:
            sock = await self.dial(head.destination)
            reader, writer = await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError) as exc:
            refuse(503, refusal.UPSTREAM_FAILED, f"connect to {dst_ip}:{dst_port} failed: {exc}")
            return
        if stream.error is not None:  # reset while connecting
            writer.transport.abort()
            return
        stream.conn.respond(stream, 200)
        self.metrics.stream_decided(SIDE, "FORWARDED")
        self.on_event(
            event(
                SIDE,
                "FORWARDED",
                "",
                source=head.source,
                destination=head.destination,
                source_id=peer_id,
                destination_id=dst_id,
                peer=peer,
            )
        )
        self.metrics.streams[SIDE] += 1
        try:
            await splice(reader, writer, stream)
        finally:
            self.metrics.streams[SIDE] -= 1
