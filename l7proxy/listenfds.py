"""Listening sockets handed to the waypoint by a process that outlives it.

A waypoint that exits closes its listening sockets, and until the next one binds, the kernel
answers every SYN the datapath redirects to it (15001 L7, 15007 outgoing tunnels, 15008
incoming tunnels) with a reset. When a longer-lived process holds the listening sockets
instead (the lab's supervisor; systemd socket units on a VM), SYNs that arrive during a restart
complete in the kernel and wait in the accept queue, and the next waypoint takes them the
moment it starts accepting: a client sees a slower first byte, never a refusal.

The contract is an environment variable, ``TULLE_LISTEN_FDS=HOST:PORT=FD[,HOST:PORT=FD...]``
(an fd number per address; systemd's LISTEN_FDS renumbers from 3, which a holder that spawns
through nsenter cannot do, hence names by address). An address without an entry is bound as
before; an entry that is not a listening TCP socket bound to its address is an error at start,
never silently replaced by a fresh bind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

ENV = "TULLE_LISTEN_FDS"
Address = tuple[str, int]


class ListenFdsError(ValueError):
    """A malformed TULLE_LISTEN_FDS, or an fd that is not the listening socket it claims."""


def format_fds(fds: Mapping[Address, int]) -> str:
    """The variable's value for ``fds`` (address -> fd number in the child)."""
    return ",".join(f"{host}:{port}={fd}" for (host, port), fd in sorted(fds.items()))


def parse_fds(value: str) -> dict[Address, int]:
    """``HOST:PORT=FD,...`` -> {(host, port): fd}; every malformed entry is named."""
    out: dict[Address, int] = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        address, sep, fd = entry.rpartition("=")
        host, colon, port = address.rpartition(":")
        if not sep or not colon or not host:
            raise ListenFdsError(f"{ENV}: {entry!r}: expected HOST:PORT=FD")
        try:
            key, number = (host, int(port)), int(fd)
        except ValueError:
            raise ListenFdsError(f"{ENV}: {entry!r}: port and fd must be numbers") from None
        if not 0 < key[1] < 65536 or number < 3:
            raise ListenFdsError(f"{ENV}: {entry!r}: port out of range or fd below 3")
        if key in out:
            raise ListenFdsError(f"{ENV}: {address} given twice")
        out[key] = number
    return out


def adopt(address: Address, fd: int) -> socket.socket:
    """The listening socket at ``fd``, checked to be TCP, listening and bound to ``address``."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as err:
        raise ListenFdsError(f"{ENV}: fd {fd} for {address[0]}:{address[1]}: {err}") from None
    try:
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            bound = sock.getsockname()[:2]
        except OSError as err:
            raise ListenFdsError(f"{ENV}: fd {fd}: {err}") from None
        if sock.type != socket.SOCK_STREAM or not listening or bound != address:
            raise ListenFdsError(
                f"{ENV}: fd {fd} is not a TCP socket listening on {address[0]}:{address[1]}"
                f" (bound to {bound}, listening: {bool(listening)})"
            )
        sock.set_inheritable(False)  # ours now: never into a child the waypoint starts
        sock.setblocking(False)
    except BaseException:
        sock.detach()  # not ours to close: the fd may be something else the process holds
        raise
    return sock


class HeldListeners:
    """The sockets named in the environment, taken one by one as the servers start."""

    def __init__(self, fds: Mapping[Address, int]) -> None:
        self.fds = dict(fds)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> HeldListeners:
        return cls(parse_fds(environ.get(ENV, "")))

    def take(self, host: str, port: int) -> socket.socket | None:
        """The held socket for (host, port), or None: bind one yourself."""
        fd = self.fds.pop((host, port), None)
        return None if fd is None else adopt((host, port), fd)

    def __bool__(self) -> bool:
        return bool(self.fds)
