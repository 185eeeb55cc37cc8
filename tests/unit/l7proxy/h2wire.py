"""Real-socket HTTP/2 tooling for the waypoint's h2 tests: a raw client that sends what
it is told (no outbound checks), backends that hold requests, and a waypoint on loopback
with chosen limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import h2.config
import h2.connection
import h2.events

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
BASE = [(b":scheme", b"http"), (b":authority", b"example.com")]


def get(path: bytes, method: bytes = b"GET") -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":path", path), *BASE]


class Client:
    """An h2c client on a real socket; ``events`` collects everything the server sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.reader, self.writer = reader, writer
        self.events: list[h2.events.Event] = []
        self.closed = False

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int = 0) -> Client:
        if rcvbuf:
            import socket

            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        client.h2.initiate_connection()
        client.send()
        return client

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def read(self, timeout: float = 5.0) -> list[h2.events.Event]:
        """One read's events (empty at EOF); answers SETTINGS/PING as h2 does."""
        try:
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.h2.receive_data(data)
        self.events += events
        self.send()
        return events

    async def until(self, done: Callable[[h2.events.Event], bool], timeout: float = 5.0) -> Any:
        """Read until an event satisfies ``done`` (returned) or the connection ends (None)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.closed:
            for event in await self.read(max(0.01, end - loop.time())):
                if done(event):
                    self.send()
                    return event
            self.send()  # what ``done`` queued (window updates)
        return None

    async def response(self, stream_id: int, timeout: float = 5.0) -> dict[str, Any]:
        """Headers, body and how the stream ended (``ended`` or ``reset`` error code)."""
        out: dict[str, Any] = {"headers": {}, "data": b""}

        def done(event: h2.events.Event) -> bool:
            if getattr(event, "stream_id", None) != stream_id:
                return False
            if isinstance(event, h2.events.ResponseReceived):
                out["headers"] = dict(event.headers or [])
            elif isinstance(event, h2.events.DataReceived):
                out["data"] += event.data or b""
                self.h2.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
            elif isinstance(event, h2.events.StreamReset):
                out["reset"] = event.error_code
                return True
            elif isinstance(event, h2.events.StreamEnded):
                out["ended"] = True
                return True
            return False

        for event in self.events:
            if done(event):
                self.send()
                return out
        self.send()
        await self.until(done, timeout)
        return out

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        for event in self.events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None

    def close(self) -> None:
        self.writer.close()


async def send_until_stalled(client: Client, sid: int, size: int, *, end: bool = False) -> int:
    """Send up to ``size`` body bytes as the window allows; stop when the window stays
    shut for a second. Returns the bytes sent."""
    chunk = b"x" * 16384
    sent = 0
    while sent < size:
        window = client.h2.local_flow_control_window(sid)
        if window > 0:
            n = min(window, len(chunk), size - sent)
            client.h2.send_data(sid, chunk[:n], end_stream=end and sent + n == size)
            sent += n
            if sent % (1 << 18) == 0 or n == window:
                client.send()
                await client.writer.drain()
            continue
        client.send()
        await client.writer.drain()
        try:
            await client.read(timeout=1.0)
        except TimeoutError:
            return sent
    client.send()
    await client.writer.drain()
    return sent


# --- backends ----------------------------------------------------------------------------


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


@dataclass
class HoldingH2Backend:
    """An h2c backend that records requests and resets. It never answers, or with
    ``respond`` answers each request with that many body bytes as fast as flow control
    lets it (``sent`` counts them)."""

    respond: int = 0
    sent: int = 0
    requests: list[int] = field(default_factory=list)
    resets: list[tuple[int, int]] = field(default_factory=list)
    transports: list[asyncio.Transport] = field(default_factory=list)
    _server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        backend = self

        class Conn(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.Transport, transport)
                backend.transports.append(self.transport)
                self.owed: dict[int, int] = {}
                config = h2.config.H2Configuration(client_side=False, header_encoding=None)
                self.h2 = h2.connection.H2Connection(config=config)
                self.h2.initiate_connection()
                self.transport.write(self.h2.data_to_send())

            def data_received(self, data: bytes) -> None:
                for event in self.h2.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        backend.requests.append(event.stream_id)
                        if backend.respond:
                            self.h2.send_headers(event.stream_id, [(b":status", b"200")])
                            self.owed[event.stream_id] = backend.respond
                    elif isinstance(event, h2.events.StreamReset):
                        backend.resets.append((event.stream_id, event.error_code))
                        self.owed.pop(event.stream_id, None)
                self.pump()
                self.transport.write(self.h2.data_to_send())

            def pump(self) -> None:
                for sid, left in list(self.owed.items()):
                    while left:
                        n = min(left, self.h2.local_flow_control_window(sid), 16384)
                        if n <= 0:
                            break
                        self.h2.send_data(sid, b"r" * n, end_stream=n == left)
                        left -= n
                        backend.sent += n
                    self.owed[sid] = left
                    if not left:
                        del self.owed[sid]

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(Conn, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in self.transports:
            transport.abort()


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
    limits: Limits | None = None, *, paused: bool = False, respond: int = 0
) -> AsyncIterator[Waypoint]:
    h1 = HoldingBackend(paused=paused)
    h2b = HoldingH2Backend(respond=respond)
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


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


def dropped(wp: Waypoint, reason: str) -> list[Flow]:
    """The DROPPED flows recorded so far with this drop reason."""
    wp.server.flows.flush()
    return [f for f in wp.flows if f.verdict is Verdict.DROPPED and f.drop_reason_desc == reason]


# --- a raw frame client (an attacker: no state machine of its own) -------------------------


class RawClient:
    """Writes frames as given (headers never indexed, so any order of streams works) and
    parses what comes back without an HTTP/2 state machine."""

    PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from h2.frame_buffer import FrameBuffer
        from hpack import Decoder, Encoder

        self.reader, self.writer = reader, writer
        self.encoder, self.decoder = Encoder(), Decoder()
        self.buffer = FrameBuffer(server=False)
        self.buffer.max_frame_size = 1 << 24
        self.frames: list[Any] = []
        self.closed = False

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int = 0) -> RawClient:
        import socket

        from hyperframe.frame import SettingsFrame

        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        client = cls(reader, writer)
        client.write(cls.PREFACE + SettingsFrame(0).serialize())
        return client

    def write(self, *chunks: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(b"".join(chunks))

    def headers(self, sid: int, block: list[tuple[bytes, bytes]], *, end: bool = True) -> bytes:
        from hpack import NeverIndexedHeaderTuple
        from hyperframe.frame import HeadersFrame

        frame = HeadersFrame(sid)
        frame.data = self.encoder.encode([NeverIndexedHeaderTuple(n, v) for n, v in block])
        frame.flags.add("END_HEADERS")
        if end:
            frame.flags.add("END_STREAM")
        return bytes(frame.serialize())

    async def read(self, timeout: float = 5.0) -> list[Any]:
        from hyperframe.frame import HeadersFrame

        try:
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return []
        self.buffer.add_data(data)
        frames = list(self.buffer)
        for frame in frames:
            if isinstance(frame, HeadersFrame):
                frame.headers = dict(self.decoder.decode(frame.data, raw=True))  # type: ignore[attr-defined]
        self.frames += frames
        return frames

    async def until(self, done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Read until a frame satisfies ``done`` (returned); None at EOF or timeout."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.closed and loop.time() < end:
            try:
                frames = await self.read(max(0.01, end - loop.time()))
            except TimeoutError:
                return None
            for frame in frames:
                if done(frame):
                    return frame
        return None

    def close(self) -> None:
        self.writer.close()


def kind(name: str) -> Callable[[Any], bool]:
    """A predicate on frame type: ``kind("GoAwayFrame")``."""
    return lambda frame: type(frame).__name__ == name
