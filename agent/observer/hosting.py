"""Hosting a gRPC servicer on a TCP address and a unix socket at once, and the start/stop
life of an Observer API server (`ObserverHost`: the node's server and the relay)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, Self

import grpc

from agent.observer.gen import observer_pb2_grpc as pb_grpc


def normalize_target(address: str) -> str:
    """A gRPC target from what users type: "/run/x.sock" or "unix:..." -> unix, else host:port."""
    if address.startswith("unix:"):
        return address
    if address.startswith("/") or address.startswith("./"):
        return "unix:" + str(Path(address).absolute())
    return address


MAX_STREAMS = 16  # concurrent GetFlows streams per server; half the default worker threads


class StreamLimit:
    """At most ``limit`` concurrent GetFlows streams. Each holds a worker thread for its whole
    life (a follow stream: until the client leaves), so without a cap a few clients could
    take every thread and stall the server; over the cap a call fails fast with
    RESOURCE_EXHAUSTED, naming the limit."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        if limit < 1:
            raise ValueError(f"max streams must be at least 1, got {limit}")
        self.limit = limit
        self.active = 0
        self.refused = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, context: grpc.ServicerContext) -> Iterator[None]:
        with self._lock:
            full = self.active >= self.limit
            if full:
                self.refused += 1
            else:
                self.active += 1
        if full:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many concurrent GetFlows streams: this server allows {self.limit}; "
                "close another stream (tulle observe --follow) or retry later",
            )
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1


class GrpcHost:
    """A started gRPC server bound to an optional TCP address and an optional unix socket.

    ``tcp_address`` is "host:port" (port 0 picks a free one, see `tcp_port`), served with
    ``tcp_credentials`` when given (TLS), else in plaintext. The unix socket is always
    plaintext (local use; file permissions guard it). Its parent directory is created, a
    stale socket file is replaced, and the file is removed again on `stop`.
    """

    def __init__(
        self,
        register: Callable[[grpc.Server], Any],
        *,
        tcp_address: str | None,
        unix_socket: str | os.PathLike[str] | None,
        max_workers: int = 32,
        tcp_credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        if tcp_address is None and unix_socket is None:
            raise ValueError("give a TCP address, a unix socket, or both")
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="observer"),
            options=[("grpc.so_reuseport", 0)],
            # Every call holds a worker: beyond that, refuse (RESOURCE_EXHAUSTED), never queue.
            maximum_concurrent_rpcs=max_workers,
        )
        register(self._server)
        self.tcp_port: int | None = None
        self.tcp_address = tcp_address
        self.unix_socket = Path(unix_socket) if unix_socket is not None else None
        if tcp_address is not None:
            if tcp_credentials is not None:
                port = self._server.add_secure_port(tcp_address, tcp_credentials)
            else:
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


class ObserverHost:
    """Serves `self.service` (an Observer servicer with a ``stopping`` event) on TCP and/or a
    unix socket. Subclasses set `service` and may hook `_started` and `_stopping`."""

    service: Any

    def __init__(self, tcp_address: str | None, unix_socket: str | os.PathLike[str] | None,
                 max_workers: int, max_streams: int = MAX_STREAMS,
                 tcp_credentials: Callable[[], grpc.ServerCredentials] | None = None) -> None:
        if max_streams >= max_workers:
            raise ValueError(f"max streams ({max_streams}) must stay below the worker threads "
                             f"({max_workers}) so status calls still get one")
        self.tcp_address = tcp_address
        self.unix_socket = unix_socket
        self.max_workers = max_workers
        self.tcp_credentials = tcp_credentials  # called at each start: TLS on the TCP port
        self._host: GrpcHost | None = None

    def start(self) -> Self:
        self._host = GrpcHost(
            lambda s: pb_grpc.add_ObserverServicer_to_server(self.service, s),
            tcp_address=self.tcp_address, unix_socket=self.unix_socket,
            max_workers=self.max_workers,
            tcp_credentials=self.tcp_credentials() if self.tcp_credentials else None,
        )
        self._started(self._host)
        return self

    def _started(self, host: GrpcHost) -> None:
        """After the server listens."""

    def _stopping(self) -> None:
        """After `service.stopping` is set, before the server stops: wake blocked streams."""

    @property
    def tcp_port(self) -> int | None:
        return self._host.tcp_port if self._host else None

    @property
    def targets(self) -> list[str]:
        """Addresses clients can dial (unix socket first)."""
        return self._host.targets if self._host else []

    def stop(self, grace: float | None = 1.0) -> None:
        self.service.stopping.set()
        self._stopping()
        if self._host is not None:
            self._host.stop(grace)
            self._host = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
