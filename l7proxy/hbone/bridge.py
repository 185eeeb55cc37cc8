"""The waypoint's L7 upstream hop over HBONE: a connection to a backend pod that rides a
CONNECT stream (``l7proxy.via.Tunnel``), handed to the L7 proxy's protocols as an ordinary
asyncio transport.

The stream comes from the same pool as the kernel-redirected tunnels (``pool.TunnelPool``:
per (client SPIFFE ID, backend SPIFFE ID, peer waypoint), the client's SVID presented and
the backend's identity required of the peer), with ``:authority``
the backend and ``Forwarded: for=`` the client pod, so the receiving waypoint runs every
check it runs for a redirected connection (the client's identity against its certificate,
NetworkPolicy, a local pod) and delivers from its own marked address, which a STRICT pod
accepts.

The protocol side is one end of a socketpair whose other end is spliced to the stream
(``splice.splice``: half-closes and resets carried both ways, flow control as
backpressure). That costs a copy through the kernel per direction, and keeps every L7
protocol (HTTP/1.1, h2c, upgrades) unchanged: they see a socket as they do for a plaintext
backend. A transport written straight onto the stream would save the copy (not done).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

from l7proxy.hbone.connecthead import connect_fields
from l7proxy.hbone.ends import Address
from l7proxy.hbone.pool import TunnelError, TunnelPool
from l7proxy.hbone.splice import splice
from l7proxy.hbone.tunnel import StreamReset
from l7proxy.via import HopRefused, Tunnel

P = TypeVar("P", bound=asyncio.BaseProtocol)
SIDE = "client"  # the sending end's metrics; its record of each hop is the L7 flow
DROPS = {403: "POLICY_DENIED", 404: "TUNNEL_DESTINATION_NOT_LOCAL"}


class TunnelBridge:
    """Opens L7 upstream connections over HBONE streams from ``pool``."""

    def __init__(self, pool: TunnelPool, *, response_timeout: float = 10.0) -> None:
        self.pool = pool
        self.response_timeout = response_timeout
        self.splices: set[asyncio.Task[tuple[bool, str]]] = set()

    async def open(
        self, backend: Address, via: Tunnel, client: Address, factory: Callable[[], P]
    ) -> tuple[asyncio.BaseTransport, P]:
        """A connected ``factory()`` protocol whose bytes ride a stream to ``backend``;
        HopRefused when the stream is not opened or the peer answers other than 200."""
        metrics = self.pool.metrics
        try:
            stream = await self.pool.stream(
                via.source_id, via.destination_id, via.peer, connect_fields(backend, client)
            )
        except TunnelError as exc:
            if exc.decided:
                metrics.stream_decided(SIDE, "DROPPED")
            raise HopRefused(exc.reason, exc.detail) from exc
        try:
            async with asyncio.timeout(self.response_timeout):
                status = await stream.response
        except (StreamReset, TimeoutError) as exc:
            stream.reset()
            metrics.stream_decided(SIDE, "DROPPED")
            raise HopRefused("TUNNEL_UPSTREAM_FAILED", f"no answer to CONNECT: {exc}") from exc
        if status != 200:
            # The peer refused the stream and reports its reason in its own flow.
            stream.reset()
            raise HopRefused(
                DROPS.get(status, "TUNNEL_UPSTREAM_FAILED"),
                f"the waypoint {via.peer[0]} refused {backend[0]}:{backend[1]}: {status}",
            )
        ours, theirs = socket.socketpair()
        try:
            reader, writer = await asyncio.open_connection(sock=ours)
        except BaseException:
            ours.close()
            theirs.close()
            stream.reset()
            raise
        metrics.stream_decided(SIDE, "FORWARDED")
        metrics.streams[SIDE] += 1
        task = asyncio.ensure_future(splice(reader, writer, stream))
        self.splices.add(task)
        task.add_done_callback(self._ended)
        loop = asyncio.get_running_loop()
        try:
            return await loop.create_connection(factory, sock=theirs)
        except BaseException:
            theirs.close()
            task.cancel()
            raise

    def _ended(self, task: asyncio.Task[tuple[bool, str]]) -> None:
        self.splices.discard(task)
        self.pool.metrics.streams[SIDE] -= 1

    async def close(self) -> None:
        for task in list(self.splices):
            task.cancel()
        for task in list(self.splices):
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or failed: either way gone
                pass
