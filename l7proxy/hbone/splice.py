"""Bytes both ways between a TCP socket (asyncio streams) and a tunnel `Stream`.

Each direction ends on its own (half-close): the socket's EOF ends the stream
(END_STREAM), the stream's end shuts the socket's write side. A reset either way aborts the
other side, so a reset reaches the application as a reset (RST), not as a clean end.
Backpressure: a socket read waits for the stream's window; a stream read waits for the
socket's drain (the stream then reopens the peer's window, ``tunnel.Stream.read``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from l7proxy.hbone.tunnel import Stream, StreamReset

READ_SIZE = 256 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), so the application sees a reset, not a clean end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


async def _socket_to_stream(reader: asyncio.StreamReader, stream: Stream) -> None:
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            stream.end()
            return
        await stream.write(data)


async def _stream_to_socket(stream: Stream, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await stream.read()
        if not data:
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            return
        writer.write(data)
        await writer.drain()


async def splice(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stream: Stream
) -> tuple[bool, str]:
    """Until both directions ended; (clean, why): not clean if either side was reset."""
    up = asyncio.ensure_future(_socket_to_stream(reader, stream))
    down = asyncio.ensure_future(_stream_to_socket(stream, writer))
    why = ""
    try:
        pending: set[asyncio.Future[None]] = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is None:
                    continue
                why = str(exc) or type(exc).__name__
                if not isinstance(exc, StreamReset):
                    stream.reset()  # the socket failed: the peer sees RST_STREAM
                reset(writer)  # either way the application sees RST
                for other in pending:
                    other.cancel()
                pending = set()
    finally:
        for task in (up, down):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if not writer.is_closing():
            writer.close()
    return not why, why
