"""Per-connection HTTP/2 budgets (pure) and their counters.

Some frames cost the waypoint work but the client nothing: RST_STREAM right after HEADERS
(rapid reset, CVE-2023-44487: each stream starts a request that is then cancelled), PING
and SETTINGS (each must be acknowledged: CVE-2019-9512, CVE-2019-9515), frames that carry
nothing (DATA with no data and no END_STREAM, PRIORITY, which RFC 9113 deprecates, PING
or SETTINGS ACKs the waypoint never asked for: CVE-2019-9518), and WINDOW_UPDATEs beyond
what the data the waypoint sent explains (Envoy bounds them per DATA frame sent).
``FrameCounter`` counts them straight from the byte stream, before the ``h2`` library
parses it, so a frame that ``h2`` ignores silently (a reset of a closed stream) still
counts. Each kind has a token bucket (``Budget``): ``limit`` frames, refilled over
``period`` seconds. A connection over budget gets GOAWAY(ENHANCE_YOUR_CALM) and is
closed; ``H2Stats`` counts it (``tulle_waypoint_h2_goaways_total{reason}``) and the
front end records a DROPPED flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from l7proxy.config import Limits

PREFACE_LENGTH = 24
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING = 0x0, 0x1, 0x2, 0x3, 0x4, 0x6
WINDOW_UPDATE = 0x8
ACK = END_STREAM = 0x1

# GOAWAY reasons: metric label -> flow drop reason.
RESET_FLOOD = "reset_flood"
PING_FLOOD = "ping_flood"
SETTINGS_FLOOD = "settings_flood"
EMPTY_FLOOD = "empty_flood"
WINDOW_FLOOD = "window_update_flood"
TOO_MANY_STREAMS = "too_many_streams"
PROTOCOL_ERROR = "protocol_error"
WRITE_BUFFER = "write_buffer"
FRAME_SIZE = "frame_size"
DROP_REASONS = {
    RESET_FLOOD: "H2_RESET_FLOOD",
    PING_FLOOD: "H2_PING_FLOOD",
    SETTINGS_FLOOD: "H2_SETTINGS_FLOOD",
    EMPTY_FLOOD: "H2_EMPTY_FRAME_FLOOD",
    WINDOW_FLOOD: "H2_WINDOW_UPDATE_FLOOD",
    TOO_MANY_STREAMS: "H2_TOO_MANY_STREAMS",
    PROTOCOL_ERROR: "H2_PROTOCOL_ERROR",
    WRITE_BUFFER: "H2_WRITE_BUFFER_FULL",
    FRAME_SIZE: "H2_FRAME_TOO_LARGE",
}


class FrameCounter:
    """Counts a client's RST_STREAM, PING, SETTINGS and WINDOW_UPDATE frames and empty ones
    (DATA with no payload and no END_STREAM, PRIORITY, PING and SETTINGS ACKs) in the raw
    stream that
    follows the connection preface, across arbitrary read boundaries.

    It also notes a frame header announcing more than ``max_frame`` bytes (``oversized``):
    the ``h2`` library checks the length only once the whole frame is buffered, so a
    client could otherwise park 16 MiB per connection outside any flow control."""

    __slots__ = ("skip", "partial", "max_frame", "oversized")

    def __init__(self, max_frame: int = 16_384) -> None:
        self.skip = PREFACE_LENGTH  # bytes to pass over: the preface, then payloads
        self.partial = b""  # the start of a frame header split across reads
        self.max_frame = max_frame
        self.oversized = 0

    def feed(self, data: bytes) -> tuple[int, int, int, int, int]:
        """(resets, pings, settings, empty, updates) whose frame header is in ``data``."""
        resets = pings = settings = empty = updates = 0
        if self.partial:
            data, self.partial = self.partial + data, b""
        pos, end = 0, len(data)
        while True:
            if self.skip:
                step = min(self.skip, end - pos)
                pos += step
                self.skip -= step
                if self.skip:
                    break
            if end - pos < 9:
                self.partial = data[pos:]
                break
            kind, flags = data[pos + 3], data[pos + 4]
            self.skip = int.from_bytes(data[pos : pos + 3], "big")
            pos += 9
            if self.skip > self.max_frame:
                self.oversized = self.skip
                break  # the connection ends here: nothing after it counts
            if kind == RST_STREAM:
                resets += 1
            elif kind == PING:
                if flags & ACK:
                    empty += 1  # the waypoint sends no PING: nothing to acknowledge
                else:
                    pings += 1
            elif kind == SETTINGS:
                if flags & ACK:
                    empty += 1  # the waypoint sends one SETTINGS (one ACK owed)
                else:
                    settings += 1
            elif kind == WINDOW_UPDATE:
                updates += 1
            elif kind == PRIORITY or (kind == DATA and not self.skip and not flags & END_STREAM):
                empty += 1
        return resets, pings, settings, empty, updates


class Budget:
    """A token bucket: ``limit`` events at once, refilled at ``limit / period`` per second."""

    __slots__ = ("limit", "rate", "tokens", "stamp")

    def __init__(self, limit: int, period: float, now: float) -> None:
        self.limit = float(limit)
        self.rate = limit / period if period > 0 else 0.0
        self.tokens = float(limit)
        self.stamp = now

    def give(self, count: int) -> None:
        """Add ``count`` tokens (earned, not waited for), up to the limit."""
        self.tokens = min(self.limit, self.tokens + count)

    def spend(self, count: int, now: float) -> bool:
        """Take ``count`` tokens; False once the bucket is overdrawn."""
        if not count:
            return self.tokens >= 0
        self.tokens = min(self.limit, self.tokens + (now - self.stamp) * self.rate) - count
        self.stamp = now
        return self.tokens >= 0


class Budgets:
    """One connection's budgets, fed its raw input (``over``)."""

    def __init__(self, limits: Limits, max_frame: int, now: float) -> None:
        period = limits.h2_budget_period
        self.limits = limits
        self.frames = FrameCounter(max_frame)
        self.resets = Budget(limits.h2_max_resets, period, now)
        self.pings = Budget(limits.h2_max_pings, period, now)
        self.settings = Budget(limits.h2_max_settings, period, now)
        self.empty = Budget(limits.h2_max_empty, period, now)
        self.updates = Budget(limits.h2_max_window_updates, period, now)
        """Also refilled by what the waypoint sends: a client's WINDOW_UPDATEs follow it."""

    def over(self, data: bytes, now: float) -> tuple[str, str] | None:
        """(reason, detail) of the first limit ``data`` breaks, or None."""
        counts = self.frames.feed(data)
        if self.frames.oversized:
            most = self.frames.max_frame
            return (
                FRAME_SIZE,
                f"a {self.frames.oversized}-byte frame (SETTINGS_MAX_FRAME_SIZE is {most})",
            )
        limits = self.limits
        for count, budget, reason, limit, what in zip(
            counts,
            (self.resets, self.pings, self.settings, self.empty, self.updates),
            (RESET_FLOOD, PING_FLOOD, SETTINGS_FLOOD, EMPTY_FLOOD, WINDOW_FLOOD),
            (
                limits.h2_max_resets,
                limits.h2_max_pings,
                limits.h2_max_settings,
                limits.h2_max_empty,
                limits.h2_max_window_updates,
            ),
            ("RST_STREAM", "PING", "SETTINGS", "empty", "WINDOW_UPDATE"),
            strict=True,
        ):
            if not budget.spend(count, now):
                return reason, f"over {limit} {what} frames per {limits.h2_budget_period:g}s"
        return None


class H2Stats(Collector):
    """HTTP/2 connection and stream terminations, by reason (per worker)."""

    def __init__(self) -> None:
        self.goaways: dict[str, int] = {}
        self.resets: dict[str, int] = {}

    def goaway(self, reason: str) -> None:
        self.goaways[reason] = self.goaways.get(reason, 0) + 1

    def reset(self, reason: str) -> None:
        self.resets[reason] = self.resets.get(reason, 0) + 1

    def collect(self) -> Iterator[Metric]:
        goaways = CounterMetricFamily(
            "tulle_waypoint_h2_goaways",
            "HTTP/2 client connections closed by the waypoint, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(self.goaways.items()):
            goaways.add_metric([reason], count)
        yield goaways
        resets = CounterMetricFamily(
            "tulle_waypoint_h2_stream_resets",
            "HTTP/2 client streams reset by the waypoint, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(self.resets.items()):
            resets.add_metric([reason], count)
        yield resets
