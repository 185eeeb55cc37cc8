"""Where a request's time goes, as the waypoint sees it: marks on one monotonic clock
(``time.monotonic_ns``; uvloop's ``loop.time()`` only has millisecond steps) and the
kernel's RTT of a socket. The arithmetic that turns marks into parts is the agent's
(``agent.flows.reqsplit``); the hot path only stamps integers.

Marks, in ns after the request head was read (0: did not happen):
``sent`` the upstream request head was written (first try), ``first`` the response head
arrived, ``head_out`` it was handed to the client side, ``last`` the response's last byte
arrived; ``connect`` the time spent opening upstream connections, ``connect_late`` the
part of it after ``sent`` (a retry's new connection). RTTs are the kernel's smoothed
figures (``tcpi_rtt``, µs): of the client's socket when the request ended and of the
upstream socket when the response head arrived.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

now = time.monotonic_ns

# struct tcp_info (uapi linux/tcp.h): tcpi_rtt is the u32 at byte 68, after 8 bytes of u8
# fields and 15 u32s. A stable ABI since Linux 2.6.
_RTT_OFFSET = 68
_RTT = struct.Struct("=I")
_INFO_LEN = _RTT_OFFSET + _RTT.size

Marks = tuple[int, int, int, int, int, int, int, int]
"""(client_rtt_us, sent, connect, connect_late, first, head_out, last, upstream_rtt_us)"""


def rtt_us(sock: Any) -> int:
    """The kernel's smoothed RTT of a TCP socket (µs); 0 for no socket, not TCP, or closed."""
    if sock is None:
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_LEN)
    except (OSError, ValueError, AttributeError):
        return 0
    if len(info) < _INFO_LEN:
        return 0
    return int(_RTT.unpack_from(info, _RTT_OFFSET)[0])


def transport_socket(transport: Any) -> Any:
    """The socket under an asyncio or uvloop transport (both answer getsockopt), or None."""
    try:
        return transport.get_extra_info("socket")
    except (AttributeError, RuntimeError):
        return None
