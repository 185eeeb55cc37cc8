"""Helpers for running the waypoint in-process against loopback backends: config from
YAML, a scripted raw HTTP/1.1 backend (chunked answers, Upgrade, recorded requests) and
a small h2c backend (gRPC-style trailers). Loopback only; used by the unit tests and
useful for the agent's integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

import h2.config
import h2.connection
import h2.events

from l7proxy.config import Limits, WaypointConfig, load_config_text, waypoint_config
from l7proxy.http.parser import END, RequestHead, RequestParser, UpgradeData

GATEWAY_PREAMBLE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tulle}
spec: {controllerName: tulle.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: tulle
  listeners: [{name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}]
"""


def service(name: str, port: int = 8080, namespace: str = "default", ip: str = "") -> str:
    cluster_ip = f"clusterIP: {ip}, " if ip else ""
    return (
        f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}"
        f"\nspec: {{{cluster_ip}ports: [{{port: {port}}}]}}\n"
    )


def gateway_config(
    routes_yaml: str,
    endpoints: dict[str, list[tuple[str, int]]],
    *,
    services: tuple[str, ...] = (),
    limits: Limits | None = None,
    protocols: dict[str, str] | None = None,
) -> WaypointConfig:
    """A config with Gateway ``infra/gw`` (port 80) served on 127.0.0.1 (a free port),
    ``routes_yaml`` (HTTPRoute documents, ``---`` separated), a Service per name in
    ``services`` (port 8080) and ``endpoints`` as ``{"default/name:8080": [(ip, port)]}``."""
    text = GATEWAY_PREAMBLE + "".join(service(s) for s in services)
    text += "---\n" + routes_yaml.strip() + "\n"
    eps = {k: [f"{h}:{p}" for h, p in v] for k, v in endpoints.items()}
    text += (
        "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
        "listeners: [{address: '127.0.0.1:0', parent: "
        "{kind: Gateway, namespace: infra, name: gw, port: 80}}]\n"
        f"endpoints: {eps!r}\nprotocols: {protocols or {}!r}\n"
    )
    return waypoint_config(load_config_text(text, "<test>"), limits=limits)


# --- a scripted HTTP/1.1 backend ---------------------------------------------------------

Handler = Callable[[RequestHead, bytes], Awaitable[bytes] | bytes]


@dataclass
class Received:
    head: RequestHead
    body: bytes


@dataclass
class RawBackend:
    """Answers each request with ``handler(head, body)`` (raw response bytes). With
    ``upgrade``, a request carrying Upgrade gets 101 and then an echo of every byte,
    uppercased."""

    handler: Handler
    upgrade: bool = False
    received: list[Received] = field(default_factory=list)
    transports: set[asyncio.Transport] = field(default_factory=set)
    port: int = 0
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _RawConn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self.transports):
            transport.abort()


class _RawConn(asyncio.Protocol):
    def __init__(self, backend: RawBackend) -> None:
        self.backend = backend
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None
        self.head: RequestHead | None = None
        self.body = bytearray()
        self.tunnel = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.backend.transports.add(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.tunnel:
            self.transport.write(data.upper())
            return
        for event in self.parser.feed(data):
            if isinstance(event, RequestHead):
                self.head, self.body = event, bytearray()
            elif isinstance(event, bytes):
                self.body += event
            elif event is END and self.head is not None:
                self._answer(self.head, bytes(self.body))
            elif isinstance(event, UpgradeData):
                self.tunnel = True
                if event.data:
                    self.transport.write(event.data.upper())

    def _answer(self, head: RequestHead, body: bytes) -> None:
        self.backend.received.append(Received(head, body))
        if self.backend.upgrade and head.upgrade:
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\n\r\n"
            )
            return
        result = self.backend.handler(head, body)
        asyncio.ensure_future(self._send(result))

    async def _send(self, result: Awaitable[bytes] | bytes) -> None:
        data = result if isinstance(result, bytes) else await result
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


# --- an h2c backend --------------------------------------------------------------------


class H2Backend:
    """An h2c server: answers every stream 200 with the request body echoed, plus
    ``grpc-status: 0`` trailers and an ``x-path`` header. Statuses put in ``statuses``
    answer the next streams first, one each, with no body."""

    def __init__(self) -> None:
        self.port = 0
        self.statuses: list[int] = []
        self.requests: list[list[tuple[bytes, bytes]]] = []
        self.transports: set[asyncio.Transport] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _H2Conn(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self.transports):
            transport.abort()


class _H2Conn(asyncio.Protocol):
    def __init__(self, backend: H2Backend) -> None:
        self.backend = backend
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.bodies: dict[int, bytearray] = {}
        self.paths: dict[int, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.backend.transports.add(self.transport)
        self.conn.initiate_connection()
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                headers = list(event.headers or [])
                self.backend.requests.append(headers)
                self.bodies[event.stream_id] = bytearray()
                self.paths[event.stream_id] = dict(headers).get(b":path", b"")
                if event.stream_ended:
                    self._answer(event.stream_id)
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] += event.data or b""
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self._answer(event.stream_id)
        self.transport.write(self.conn.data_to_send())

    def _answer(self, stream_id: int) -> None:
        body = bytes(self.bodies.pop(stream_id, b""))
        statuses = self.backend.statuses
        status = statuses.pop(0) if statuses else 200
        if status != 200:
            body = b""
        headers = [
            (b":status", str(status).encode()),
            (b"content-type", b"application/grpc"),
            (b"x-path", self.paths.pop(stream_id, b"")),
        ]
        self.conn.send_headers(stream_id, headers)
        self.conn.send_data(stream_id, body)
        self.conn.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)


# --- a raw client ----------------------------------------------------------------------


async def read_response(
    reader: asyncio.StreamReader, *, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length, chunked, or until close); ``head``: the
    response to a HEAD request, which has no body."""
    raw_head = await reader.readuntil(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if head or status in (101, 204, 304) or 100 <= status < 200:
        return status, headers, b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    else:
        body = await reader.read()
    return status, headers, body
