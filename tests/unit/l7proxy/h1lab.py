"""Shared by the HTTP/1.1 attack tests: a waypoint on loopback in front of one scripted
backend (``l7proxy.testing.RawBackend``), and ``Wire``, a fake transport for playbooks
that drive a connection without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from l7proxy.config import Limits
from l7proxy.http.parser import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import RawBackend, gateway_config

Answer = Callable[[RequestHead, bytes], Awaitable[bytes] | bytes]


def raw_route(backend: str = "raw") -> str:
    """One HTTPRoute of gateway infra/gw sending everything to ``backend``:8080."""
    return f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: default}}
spec:
  parentRefs: [{{name: gw, namespace: infra}}]
  rules:
  - backendRefs: [{{name: {backend}, port: 8080}}]
"""


ROUTE = raw_route()
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def ok(head: RequestHead, body: bytes) -> bytes:
    return OK


@asynccontextmanager
async def raw_waypoint(
    answer: Answer,
    *,
    route: str = ROUTE,
    service: str = "raw",
    h2: bool = False,
    limits: Limits | None = None,
    flow_sink: Callable[[list[Any]], None] | None = None,
) -> AsyncIterator[tuple[WaypointServer, RawBackend]]:
    """A started waypoint whose backend (Service ``service``:8080 in ``default``) answers
    with ``answer``; both closed after."""
    backend = RawBackend(answer)
    port = await backend.start()
    endpoints = {f"default/{service}:8080": [("127.0.0.1", port)]}
    config = gateway_config(route, endpoints, services=(service,), limits=limits)
    server = WaypointServer(config, flow_sink=flow_sink, enable_h2=h2)
    await server.start()
    try:
        yield server, backend
    finally:
        await server.close()
        await backend.close()


@asynccontextmanager
async def waypoint(
    answer: Answer = ok, *, route: str = ROUTE, h2: bool = False
) -> AsyncIterator[tuple[int, RawBackend]]:
    """``raw_waypoint`` as (the waypoint's port, the backend)."""
    async with raw_waypoint(answer, route=route, h2=h2) as (server, backend):
        yield server.ports[0], backend


def run(test: Callable[[], Awaitable[None]], timeout: float = 20) -> None:
    async def main() -> None:
        await asyncio.wait_for(test(), timeout)

    asyncio.run(main())


class Wire(asyncio.Transport):
    """A transport that records what was written; the test plays the peer. ``strict``:
    a write after close fails the test (a client connection must never do that)."""

    def __init__(self, peer: tuple[str, int] = ("10.0.0.9", 40000), *, strict: bool = True):
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.reading = True
        self.buffered = 0
        """What ``get_write_buffer_size`` reports."""
        self.peer = peer
        self.strict = strict

    def write(self, data: Any) -> None:
        if self.closed:
            assert not self.strict, "write after close"
            return
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("10.0.0.1", 80)}.get(name, default)

    def take(self) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data
