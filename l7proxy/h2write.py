"""One socket write per HTTP/2 connection per event-loop iteration (``Coalescer``).

A unary gRPC call makes several small outputs on each side (a head, DATA, trailers,
WINDOW_UPDATEs), and uvloop sends each ``transport.write`` at once: one ``write()``
system call each, about a fifth of the waypoint's CPU per call. The ``h2`` connection's
output is taken when a step is done and written when the loop iteration ends.

Bounds: at most ``COALESCE_MAX`` bytes are held before they are written at once, so the
transport's buffer (its ``pause_writing``, and the front end's write-buffer ceiling)
trails what the connection produced by at most that much, however much one iteration
makes (a flood of tiny frames, or many streams' responses). Whoever closes the connection
or sends FIN calls ``now`` first: what is held is never lost to a close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.connection

COALESCE_MAX = 64 * 1024
"""Bytes held for the end of the iteration (asyncio's default high-water mark)."""


class Coalescer:
    """The output ``h2`` queued, held until the loop iteration ends (or ``now``)."""

    __slots__ = ("h2", "write", "loop", "chunks", "size", "scheduled")

    def __init__(self, conn: h2.connection.H2Connection, write: Callable[[bytes], None]) -> None:
        self.h2 = conn
        self.write = write
        """Sends bytes on the connection (it drops them once the connection is closed)."""
        self.loop = asyncio.get_running_loop()
        self.chunks: list[bytes] = []
        self.size = 0
        self.scheduled = False

    def take(self) -> int:
        """Hold what ``h2`` queued (returns its size); written when this iteration ends,
        or at once past ``COALESCE_MAX``."""
        data = self.h2.data_to_send()
        if not data:
            return 0
        self.chunks.append(data)
        self.size += len(data)
        if self.size >= COALESCE_MAX:
            self.now()
        elif not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._due)
        return len(data)

    def _due(self) -> None:
        self.scheduled = False
        self.now()

    def now(self) -> None:
        """Write what is held, now (before a close, FIN or abort of the connection)."""
        if not self.chunks:
            return
        chunks = self.chunks
        out = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks, self.size = [], 0  # first: ``write`` may come back here (a give-up)
        self.write(out)
