"""Where a request's time goes, as the waypoint sees it: marks on one monotonic clock
(``time.monotonic_ns``; uvloop's ``loop.time()`` only has millisecond steps) and the
kernel's RTT of a socket. The arithmetic that turns marks into parts is the agent's
(``agent.flows.reqsplit``); the hot path only stamps integers.

The split is part of tracing and has a switch (``SPLIT``, on by default): off, requests
take no marks and no RTT reads (only the span every flow has), and their flows carry no
split. ``WaypointConfig.request_split`` sets it when a server starts; the node's
waypoint also flips it at run time with the agent's tracing signals (SIGUSR1 off, SIGUSR2
on). A request keeps the state it started with (``Exchange.timed``).

Marks, in ns after the request head was read (0: did not happen):
``sent`` the upstream request head was written (first try), ``first`` the response head
arrived, ``head_out`` it was handed to the client side, ``last`` the response's last byte
arrived (these two only when the last byte was not read with the head: otherwise they
do not change the split); ``connect`` the time spent opening upstream connections,
``connect_late`` the part of it after ``sent`` (a retry's new connection). RTTs are the
kernel's figures for the path (``rtt_us``, µs): of the client's socket when the request
ended and of the upstream socket when the response head arrived. Two more marks most
requests lack: ``body_end`` the request body's last byte arrived from the client after
``sent`` (a client that sends its body late), and ``stalled`` ns the client's connection
would not take response bytes while the response was under way (a slow reader: the
waypoint paused the backend meanwhile).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

now = time.monotonic_ns

# struct tcp_info (uapi linux/tcp.h, a stable ABI): tcpi_rtt (smoothed) is the u32 at byte
# 68, tcpi_min_rtt (Linux 4.6+) the u32 at byte 148.
_U32 = struct.Struct("=I")
_SRTT, _MIN_RTT = 68, 148
_INFO_LEN = _MIN_RTT + _U32.size

Marks = bytes
"""(client_rtt_us, start, sent, first, upstream_rtt_us), clock readings as taken, packed
as 64-bit integers (at the flow's call site in ``l7proxy.proxy``:
``agent.flows.l7record.pack_lean``; ``agent.flows.reqsplit.LEAN``); the agent makes
them relative. The others (connect, connect_late, head_out, last, body_end, stalled:
``reqsplit.EXTRA``) are 0 or redundant for most requests and go in the record, only for
a request that is not ``Exchange.plain``."""


class Switch:
    """Whether requests take timing marks (the process's one ``SPLIT``)."""

    __slots__ = ("on",)

    def __init__(self, on: bool = True) -> None:
        self.on = on


SPLIT = Switch()


def rtt_us(sock: Any) -> int:
    """The kernel's round-trip time of a TCP socket's path (µs): ``tcpi_min_rtt``, the
    lowest RTT the kernel sampled on it (its window is minutes), else the smoothed
    ``tcpi_rtt`` on a kernel without it; 0 for no socket, not TCP, or closed.

    Not the smoothed RTT: the kernel times a segment until its ACK, and a peer that
    answers within its delayed-ACK time (~40 ms) sends the ACK with the answer, so the
    smoothed RTT takes in the peer's own time (a backend's processing, a client's pause
    between requests). Measured in the lab: a backend alternating fast answers and 200 ms
    ones pushed the upstream srtt to 18 ms on a 60 µs path (ARCHITECTURE.md).
    """
    if sock is None:
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _INFO_LEN)
    except (OSError, ValueError, AttributeError):
        return 0
    if len(info) >= _INFO_LEN:
        return int(_U32.unpack_from(info, _MIN_RTT)[0])
    if len(info) >= _SRTT + _U32.size:
        return int(_U32.unpack_from(info, _SRTT)[0])
    return 0


class RttCache:
    """A socket's ``rtt_us``, read again at most once a ``refresh_ns`` (a getsockopt costs
    about 2 µs, a few percent of a request; the kernel's minimum RTT rarely moves). A 0
    (no sample yet) is read again next time. Hot paths read ``value`` while the clock is
    before ``until`` and call ``get`` only after it (one comparison, no call)."""

    __slots__ = ("sock", "value", "until", "refresh_ns")

    def __init__(self, sock: Any, refresh_ns: int = 1_000_000_000) -> None:
        self.sock = sock
        self.value = 0
        self.until = 0 if sock is not None else 1 << 62  # no socket: 0 for ever
        self.refresh_ns = refresh_ns

    def get(self, now_ns: int) -> int:
        if now_ns >= self.until:
            self.value = value = rtt_us(self.sock)
            self.until = now_ns + self.refresh_ns if value else now_ns
        return self.value


NO_RTT = RttCache(None)


def transport_socket(transport: Any) -> Any:
    """The socket under an asyncio or uvloop transport (both answer getsockopt), or None."""
    try:
        return transport.get_extra_info("socket")
    except (AttributeError, RuntimeError):
        return None
