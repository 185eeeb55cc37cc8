"""What both ends share: the callbacks the integrator wires, dialling a socket with the
waypoint's mark, and building a `TunnelEvent`."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

from agent.flows.tunnelrecord import Side, TunnelEvent, Verdict

Address = tuple[str, int]
EventSink = Callable[[TunnelEvent], None]
Dial = Callable[[Address], Awaitable[socket.socket]]
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
NOWHERE: Address = ("", 0)


def event(
    side: Side,
    verdict: Verdict,
    reason: str,
    *,
    source: Address = NOWHERE,
    destination: Address = NOWHERE,
    source_id: str = "",
    destination_id: str = "",
    peer: Address = NOWHERE,
    detail: str = "",
) -> TunnelEvent:
    return TunnelEvent(
        time.time_ns(),
        side,
        verdict,
        reason,
        source,
        destination,
        source_id,
        destination_id,
        peer,
        detail,
    )


def dialer(source: str | None = None, mark: int = 0, timeout: float = 5.0) -> Dial:
    """Connected sockets from ``source`` (the waypoint's address) with SO_MARK ``mark``
    (``TULLE_MARK_WAYPOINT``: the kernel admits the waypoint identity only with it, as for
    ``l7proxy.upstream.WaypointConnector``); 0 and None leave the kernel's defaults."""

    async def dial(address: Address) -> socket.socket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if mark:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            if source:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    return dial
