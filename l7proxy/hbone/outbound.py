"""The sending end: the 15007 listener (TUNNEL_OUTBOUND_PORT) where the kernel redirects an
enrolled pod's TCP connection.

Per connection: the original destination (``original_destination``: the datapath's
``l7_orig_dst_v1``, by the client's address), the client's SPIFFE ID (``identity_of``), the
destination node's waypoint (``waypoint_of``: also for a destination on this node, whose
traffic tunnels through this node's own 15008 so identity is asserted the same way), then a
pooled stream (``pool``) on a connection whose peer proved the destination pod's identity,
``:authority`` the destination and ``Forwarded: for=`` the client.
Refusals reset the client (RST: SO_LINGER 0) at once. This end reports what it decided: no
certificate, an unreachable peer, a peer whose certificate it refused, and FORWARDED when the
peer answered 200; the peer reports its own refusals.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable

from agent.flows.tunnelrecord import Side
from identity.hbone import TUNNEL_OUTBOUND_PORT
from l7proxy.hbone import refusal
from l7proxy.hbone.connecthead import connect_fields
from l7proxy.hbone.ends import NOWHERE, Address, EventSink, event
from l7proxy.hbone.metrics import HboneMetrics
from l7proxy.hbone.pool import TunnelError, TunnelPool
from l7proxy.hbone.splice import reset, splice
from l7proxy.hbone.tunnel import StreamReset

log = logging.getLogger("tulle.waypoint.hbone")
SIDE: Side = "client"


class OutboundServer:
    def __init__(
        self,
        pool: TunnelPool,
        *,
        original_destination: Callable[[Address], Address | None],
        identity_of: Callable[[str], str | None],
        waypoint_of: Callable[[str], Address | None],
        on_event: EventSink,
        metrics: HboneMetrics | None = None,
        response_timeout: float = 10.0,
    ) -> None:
        self.pool = pool
        self.original_destination = original_destination
        self.identity_of = identity_of
        self.waypoint_of = waypoint_of
        self.on_event = on_event
        self.metrics = metrics or pool.metrics
        self.response_timeout = response_timeout
        self.server: asyncio.Server | None = None
        self.address: Address = ("", 0)

    async def start(
        self, host: str, port: int = TUNNEL_OUTBOUND_PORT, *, sock: socket.socket | None = None
    ) -> Address:
        """Listen on (host, port), or on ``sock`` when a holder passed it (l7proxy.listenfds)."""
        if sock is not None:
            self.server = await asyncio.start_server(self._handle, sock=sock)
        else:
            self.server = await asyncio.start_server(self._handle, host, port, reuse_address=True)
        self.address = self.server.sockets[0].getsockname()[:2]
        return self.address

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        await self.pool.close()

    def _drop(
        self,
        writer: asyncio.StreamWriter,
        reason: str,
        detail: str,
        *,
        client: Address,
        destination: Address | None = None,
        source_id: str = "",
        destination_id: str = "",
        peer: Address = NOWHERE,
    ) -> None:
        """Reset the client and report it. Without an original destination the flow goes to
        the address the client reached (this listener); an unknown peer waypoint stays
        ``NOWHERE`` (the record's one optional address)."""
        if destination is None:
            destination = writer.get_extra_info("sockname")[:2]
        reset(writer)
        self.metrics.stream_decided(SIDE, "DROPPED")
        log.info("tunnel for %s:%d refused: %s (%s)", *client, reason, detail)
        self.on_event(
            event(
                SIDE,
                "DROPPED",
                reason,
                source=client,
                destination=destination,
                source_id=source_id,
                destination_id=destination_id,
                peer=peer,
                detail=detail,
            )
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client: Address = writer.get_extra_info("peername")[:2]
        destination = self.original_destination(client)
        if destination is None:
            self._drop(
                writer,
                refusal.UPSTREAM_FAILED,
                "no original destination (not redirected by the datapath)",
                client=client,
            )
            return
        source_id = self.identity_of(client[0])
        destination_id = self.identity_of(destination[0]) or ""
        drop = functools.partial(
            self._drop,
            writer,
            client=client,
            destination=destination,
            destination_id=destination_id,
        )
        if source_id is None:
            drop(refusal.NO_CERTIFICATE, f"the client {client[0]} is not a known pod")
            return
        peer = self.waypoint_of(destination[0])
        if peer is None:
            drop(
                refusal.UPSTREAM_FAILED,
                f"no waypoint known for {destination[0]}",
                source_id=source_id,
            )
            return
        if not destination_id:
            drop(
                refusal.UPSTREAM_FAILED,
                f"no identity known for {destination[0]}",
                source_id=source_id,
            )
            return
        stream = None
        try:
            stream = await self.pool.stream(
                source_id, destination_id, peer, connect_fields(destination, client)
            )
            async with asyncio.timeout(self.response_timeout):
                status = await stream.response
        except TunnelError as exc:
            if exc.decided:
                drop(exc.reason, exc.detail, source_id=source_id, peer=peer)
            else:
                reset(writer)  # the peer refused this certificate, and reports it
            return
        except (StreamReset, TimeoutError) as exc:
            if stream is not None:
                stream.reset()
            drop(
                refusal.UPSTREAM_FAILED,
                f"no answer to CONNECT: {exc}",
                source_id=source_id,
                peer=peer,
            )
            return
        if status != 200:
            reset(writer)  # the peer refused the stream and reports why
            return
        self.metrics.stream_decided(SIDE, "FORWARDED")
        self.on_event(
            event(
                SIDE,
                "FORWARDED",
                "",
                source=client,
                destination=destination,
                source_id=source_id,
                destination_id=destination_id,
                peer=peer,
            )
        )
        self.metrics.streams[SIDE] += 1
        try:
            await splice(reader, writer, stream)
        finally:
            self.metrics.streams[SIDE] -= 1
