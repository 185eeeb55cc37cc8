"""The h2 front end's limits enforced: stream errors, reset budget, GOAWAY, stalled streams.

GOAWAY is followed by a lingering close; the server's sweeper closes idle connections here.

``H2Guard`` is a base of ``h2.H2Frontend`` (split out by concern, not reused elsewhere):
its methods act on the front end's connection state, declared below for the type checker.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import h2.connection
import h2.errors

from l7proxy import h2limits
from l7proxy.flows import now_ns

if TYPE_CHECKING:
    from l7proxy.config import Limits
    from l7proxy.h1 import Http1Connection
    from l7proxy.h2stream import H2Stream
    from l7proxy.proxy import Proxy

Codes = h2.errors.ErrorCodes
LINGER = 2.0  # seconds a connection closed with GOAWAY keeps discarding input


class H2Guard:
    # The front end's state these methods use (set in ``H2Frontend.__init__``).
    conn: Http1Connection
    proxy: Proxy
    limits: Limits
    stats: h2limits.H2Stats
    h2: h2.connection.H2Connection
    budgets: h2limits.Budgets
    streams: dict[int, H2Stream]
    draining: dict[int, H2Stream]
    parked: dict[int, H2Stream]
    closed: bool
    shut: bool

    if TYPE_CHECKING:

        def flush(self) -> None: ...

        def flush_now(self) -> None: ...

        def reset(self, stream_id: int, code: Codes = Codes.INTERNAL_ERROR) -> None: ...

    def _malformed(self, stream_id: int, reason: str) -> None:
        """RFC 9113 8.1.1: a stream error. Our resets count against the reset budget too:
        a client must not make the waypoint reset streams for free either."""
        self.reset(stream_id, Codes.PROTOCOL_ERROR)
        self.stats.reset("malformed")
        self._record("MALFORMED_REQUEST", reason)
        self._provoked()

    def _provoked(self) -> None:
        """A stream reset the client provoked (MadeYouReset, CVE-2025-8671: a malformed
        head, DATA after END_STREAM, a stream window overflow) spends a reset token."""
        if not self.closed and not self.budgets.resets.spend(1, asyncio.get_running_loop().time()):
            self._calm(h2limits.RESET_FLOOD, f"over {self.limits.h2_max_resets} stream resets")

    def _calm(self, reason: str, detail: str, code: Codes = Codes.ENHANCE_YOUR_CALM) -> None:
        self.h2.close_connection(code, additional_data=detail.encode())
        self._give_up(reason, detail)

    def _give_up(self, reason: str, detail: str) -> None:
        """Close the connection (after any GOAWAY queued); count it; record a flow."""
        if self.closed:
            return
        self.closed = True
        self.stats.goaway(reason)
        self._record(h2limits.DROP_REASONS[reason], detail)
        transport = self.conn.transport
        self._cancel_all()
        if transport is None:
            return
        if reason == h2limits.WRITE_BUFFER:
            self.conn.mode = "closed"
            transport.abort()  # the client is not reading: nothing more can reach it
            return
        self.flush_now()  # the GOAWAY and anything held, before the FIN
        # Lingering close: closing with unread input would send a TCP reset, and the
        # client's kernel would drop the GOAWAY. Send FIN, discard input, close later.
        if transport.can_write_eof():
            transport.write_eof()
            self.shut = True
            asyncio.get_running_loop().call_later(LINGER, self.conn._close)
        else:
            self.conn._close()

    def _record(self, drop: str, detail: str) -> None:
        flows = self.proxy.flows
        if flows.enabled:
            flow = (now_ns(), 0, 0, "", "", "HTTP/2", "", "", "", drop)
            flows.record((*flow, self.conn.client, self.conn.local_addr, detail[:200], None,
                          None, None, None))

    def check(self, now: float, idle_timeout: float) -> None:
        """From the server's sweeper: close when idle; reset streams stalled on the client
        (request body owed but not arriving, or response not being read)."""
        if not self.streams and not self.draining:
            if now - self.conn.idle_since > idle_timeout:
                self.flush_now()
                self.conn._close()
            return
        timeout = self.limits.h2_stream_timeout
        for stream in [*self.streams.values(), *self.draining.values()]:
            late = stream.late_body(now, self.limits) if stream.stream_id in self.streams else ""
            if late:
                self.stats.reset("slow_body")
                self.streams.pop(stream.stream_id, None)  # its task's end drains the answer
                stream.body_timed_out(late)
            elif stream.stalled(now, timeout, draining=stream.stream_id not in self.streams):
                self.stats.reset("stalled")
                self.streams.pop(stream.stream_id, None)
                self.draining.pop(stream.stream_id, None)
                self.parked.pop(stream.stream_id, None)
                stream.abort(Codes.CANCEL)
                if stream.task is not None:
                    stream.task.cancel()

    def _cancel_all(self) -> None:
        for stream in list(self.streams.values()):
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.parked.clear()
