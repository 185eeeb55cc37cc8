"""Hosting a gRPC servicer on a TCP address and a unix socket at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc


def normalize_target(address: str) -> str:
    """A gRPC target from what users type: "/run/x.sock" or "unix:..." -> unix, else host:port."""
    if address.startswith("unix:"):
        return address
    if address.startswith("/") or address.startswith("./"):
        return "unix:" + str(Path(address).absolute())
    return address


class GrpcHost:
    """A started gRPC server bound to an optional TCP address and an optional unix socket.

    ``tcp_address`` is "host:port" (port 0 picks a free one, see `tcp_port`). The unix
    socket's parent directory is created, a stale socket file is replaced, and the file is
    removed again on `stop`.
    """

    def __init__(
        self,
        register: Callable[[grpc.Server], Any],
        *,
        tcp_address: str | None,
        unix_socket: str | os.PathLike[str] | None,
        max_workers: int = 32,
    ) -> None:
        if tcp_address is None and unix_socket is None:
            raise ValueError("give a TCP address, a unix socket, or both")
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="observer"),
            options=[("grpc.so_reuseport", 0)],
        )
        register(self._server)
        self.tcp_port: int | None = None
        self.tcp_address = tcp_address
        self.unix_socket = Path(unix_socket) if unix_socket is not None else None
        if tcp_address is not None:
            port = self._server.add_insecure_port(tcp_address)
            if port == 0:
                raise OSError(f"cannot listen on {tcp_address} (address in use?)")
            self.tcp_port = port
        if self.unix_socket is not None:
            self.unix_socket.parent.mkdir(parents=True, exist_ok=True)
            if self.unix_socket.is_socket():
                self.unix_socket.unlink()
            self._server.add_insecure_port(f"unix:{self.unix_socket.absolute()}")
        self._server.start()

    @property
    def targets(self) -> list[str]:
        """Client targets for this server, unix socket first."""
        out = []
        if self.unix_socket is not None:
            out.append(f"unix:{self.unix_socket.absolute()}")
        if self.tcp_port is not None and self.tcp_address is not None:
            host = self.tcp_address.rsplit(":", 1)[0]
            if host in ("", "0.0.0.0", "[::]"):
                host = "127.0.0.1"
            out.append(f"{host}:{self.tcp_port}")
        return out

    def stop(self, grace: float | None = 1.0) -> None:
        self._server.stop(grace).wait()
        if self.unix_socket is not None and self.unix_socket.is_socket():
            self.unix_socket.unlink()
