"""L7 flows: one per request, in the same ``Flow`` shape as the datapath's L4 flows.

The hot path appends one tuple to a list. ``Flow`` objects are built in batches, when a
batch fills or a short timer fires, and handed to the sink (for example
``FlowRing.put_many``). With no sink nothing is recorded. A sink that cannot keep up
loses the oldest pending records, never memory: at most ``max_pending`` are held.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence

from agent.flows.flow import (
    HTTP,
    IP,
    TCP,
    EventType,
    Flow,
    FlowType,
    IPVersion,
    L7Type,
    Layer7,
    TulleInfo,
    Verdict,
)
from agent.flows.names import EVENT_L7

_L7_EVENT = EventType(EVENT_L7)

FlowSink = Callable[[Sequence[Flow]], None]

# (time_ns, latency_ns, code, method, url, protocol, route, rule, backend, drop_reason,
#  client (ip, port), local (ip, port))
Record = tuple[int, int, int, str, str, str, str, str, str, str, tuple[str, int], tuple[str, int]]


class FlowRecorder:
    def __init__(
        self,
        sink: FlowSink | None,
        *,
        node_name: str = "",
        batch: int = 256,
        interval: float = 0.2,
        max_pending: int = 65_536,
    ) -> None:
        self.sink = sink
        self.node_name = node_name
        self.batch = batch
        self.interval = interval
        self.max_pending = max_pending
        self.lost = 0
        self._pending: list[Record] = []
        self._timer: asyncio.TimerHandle | None = None
        self._ips: dict[tuple[str, str], IP] = {}
        # Flow ids: UUID-shaped (version 4 layout), a random per-worker prefix and node
        # part mixed with a counter; no urandom call per flow.
        bits = random.getrandbits
        self._uuid_prefix = f"{bits(32):08x}-{bits(16):04x}-4{bits(12):03x}"
        self._uuid_node = random.getrandbits(48)
        self._seq = 0

    @property
    def enabled(self) -> bool:
        return self.sink is not None

    def record(self, entry: Record) -> None:
        pending = self._pending
        pending.append(entry)
        if len(pending) >= self.batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        if not pending or self.sink is None:
            return
        if len(pending) > self.max_pending:
            self.lost += len(pending) - self.max_pending
            pending = pending[-self.max_pending :]
        self.sink([self.to_flow(r) for r in pending])

    def to_flow(self, r: Record) -> Flow:
        when, latency, code, method, url, protocol, route, rule, backend, drop, client, local = r
        key = (client[0], local[0])
        ip = self._ips.get(key)
        if ip is None:
            if len(self._ips) > 4096:
                self._ips.clear()
            v6 = ":" in client[0]
            ip = self._ips[key] = IP(client[0], local[0], IPVersion.IPv6 if v6 else IPVersion.IPv4)
        self._seq += 1
        return Flow(
            time=when,
            uuid=f"{self._uuid_prefix}-{0x8000 | (self._seq >> 48) & 0x3FFF:04x}-"
            f"{(self._uuid_node ^ self._seq) & 0xFFFFFFFFFFFF:012x}",
            verdict=Verdict.DROPPED if drop else Verdict.FORWARDED,
            drop_reason_desc=drop,
            ip=ip,
            l4=TCP(client[1], local[1]),
            type=FlowType.L7,
            node_name=self.node_name,
            l7=Layer7(L7Type.RESPONSE, latency, HTTP(code, method, url, protocol)),
            event_type=_L7_EVENT,
            is_reply=True,
            tulle=TulleInfo(duration_ns=latency, route=route, rule=rule, backend=backend),
        )


def now_ns() -> int:
    return time.time_ns()


class CountingSink:
    """Builds and drops flows, counting them: for benchmarks with flows on."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, flows: Sequence[Flow]) -> None:
        self.count += len(flows)


def json_lines_sink(write: Callable[[str], object]) -> FlowSink:
    """One Hubble-shaped JSON object per flow and line (``tulle observe -o json``)."""
    import json

    from agent.flows.codec import envelope

    def sink(flows: Sequence[Flow]) -> None:
        write("".join(json.dumps(envelope(f)) + "\n" for f in flows))

    return sink
