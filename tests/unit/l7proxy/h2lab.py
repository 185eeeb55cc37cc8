"""A waypoint on loopback with chosen limits, and backends that hold requests: the
HTTP/1.1 ``HoldingBackend`` (optionally not reading) and the h2c ``HoldingH2Backend``
(optionally streaming a response as fast as flow control allows), built on ``H2cBackend``,
the h2c server the other h2 tests' backends share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import cast

import h2.config
import h2.connection
import h2.events
from h2.settings import SettingCodes

from agent.flows.flow import Flow, Verdict
from l7proxy.config import Limits
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /h1}}]
    backendRefs: [{name: h1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /grpc.Echo}}]
    backendRefs: [{name: grpc, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
"""


@dataclass
class HoldingBackend:
    """An HTTP/1.1 backend that never answers. With ``paused`` it does not read either
    (its receive buffer kept small) until ``resume``; ``received`` counts bytes read."""

    paused: bool = False
    received: int = 0
    closed: int = 0
    transports: list[asyncio.Transport] = field(default_factory=list)
    port: int = 0
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        import socket

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # inherited by accepts
        sock.bind(("127.0.0.1", 0))
        backend = self

        class Conn(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.Transport, transport)
                backend.transports.append(self.transport)

            def data_received(self, data: bytes) -> None:
                backend.received += len(data)
                if backend.paused:  # (pausing in connection_made is undone by asyncio)
                    self.transport.pause_reading()

            def connection_lost(self, exc: Exception | None) -> None:
                backend.closed += 1

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(Conn, sock=sock)
        self.port = sock.getsockname()[1]
        return self.port

    def resume(self) -> None:
        self.paused = False
        for transport in self.transports:
            transport.resume_reading()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in self.transports:
            transport.abort()


class H2cConn(asyncio.Protocol):
    """One accepted connection of an ``H2cBackend``: the server side of an h2c connection,
    which hands each event to the backend and writes what it queued."""

    def __init__(self, backend: H2cBackend) -> None:
        self.backend = backend
        self.owed: dict[int, int] = {}  # body bytes still to stream, by stream (its use)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.backend.transports.append(self.transport)
        self.h2 = h2.connection.H2Connection(config=self.backend.h2_config())
        self.h2.initiate_connection()
        self.backend.opened(self)
        self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            self.backend.handle(self, event)
        self.backend.flush(self)
        self.transport.write(self.h2.data_to_send())


@dataclass
class H2cBackend:
    """An h2c backend on loopback; a subclass answers in ``handle`` (and may adjust its
    connections in ``opened`` and queue more in ``flush``, after each read)."""

    transports: list[asyncio.Transport] = field(default_factory=list, kw_only=True)
    _server: asyncio.base_events.Server | None = field(default=None, kw_only=True)

    def h2_config(self) -> h2.config.H2Configuration:
        return h2.config.H2Configuration(client_side=False, header_encoding=None)

    def opened(self, conn: H2cConn) -> None:
        pass

    def handle(self, conn: H2cConn, event: h2.events.Event) -> None:
        pass

    def flush(self, conn: H2cConn) -> None:
        pass

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: H2cConn(self), "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in self.transports:
            transport.abort()


@dataclass
class HoldingH2Backend(H2cBackend):
    """An h2c backend that records requests and resets. It never answers, or with
    ``respond`` answers each request with that many body bytes as fast as flow control
    lets it (``sent`` counts them)."""

    respond: int = 0
    table: int = 0
    """With ``table``, the backend allows that large an HPACK table (its SETTINGS)."""
    sent: int = 0
    requests: list[int] = field(default_factory=list)
    resets: list[tuple[int, int]] = field(default_factory=list)

    def opened(self, conn: H2cConn) -> None:
        if self.table:
            conn.h2.decoder.max_allowed_table_size = self.table
            conn.h2.update_settings({SettingCodes.HEADER_TABLE_SIZE: self.table})

    def handle(self, conn: H2cConn, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.requests.append(event.stream_id)
            if self.respond:
                conn.h2.send_headers(event.stream_id, [(b":status", b"200")])
                conn.owed[event.stream_id] = self.respond
        elif isinstance(event, h2.events.StreamReset):
            self.resets.append((event.stream_id, event.error_code))
            conn.owed.pop(event.stream_id, None)

    def flush(self, conn: H2cConn) -> None:
        for sid, left in list(conn.owed.items()):
            while left:
                n = min(left, conn.h2.local_flow_control_window(sid), 16384)
                if n <= 0:
                    break
                conn.h2.send_data(sid, b"r" * n, end_stream=n == left)
                left -= n
                self.sent += n
            conn.owed[sid] = left
            if not left:
                del conn.owed[sid]


@dataclass
class Waypoint:
    server: WaypointServer
    port: int
    h1: HoldingBackend
    h2: HoldingH2Backend
    flows: list[Flow]

    def metric(self, name: str, **labels: str) -> float:
        value = self.server.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@asynccontextmanager
async def waypoint(
    limits: Limits | None = None, *, paused: bool = False, respond: int = 0, table: int = 0
) -> AsyncIterator[Waypoint]:
    h1 = HoldingBackend(paused=paused)
    h2b = HoldingH2Backend(respond=respond, table=table)
    endpoints = {
        "default/h1:8080": [("127.0.0.1", await h1.start())],
        "default/grpc:8080": [("127.0.0.1", await h2b.start())],
    }
    config = gateway_config(
        ROUTES,
        endpoints,
        services=("h1", "grpc"),
        limits=limits,
        protocols={"default/grpc:8080": "h2c"},
    )
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend)
    [port] = await server.start()
    try:
        yield Waypoint(server, port, h1, h2b, flows)
    finally:
        await server.close()
        await h1.close()
        await h2b.close()


def dropped(wp: Waypoint, reason: str) -> list[Flow]:
    """The DROPPED flows recorded so far with this drop reason."""
    wp.server.flows.flush()
    return [f for f in wp.flows if f.verdict is Verdict.DROPPED and f.drop_reason_desc == reason]
