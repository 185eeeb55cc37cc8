"""Real-socket HTTP/2 clients for the waypoint's h2 tests: ``Client`` (the ``h2`` state
machine, no outbound checks) and ``RawClient`` (frames as given, an attacker's view)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import h2.config
import h2.connection
import h2.events

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


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))
