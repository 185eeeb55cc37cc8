"""A retry budget (Gateway API GEP-3388, ``BackendTrafficPolicy.retryConstraint``) for one
backend in one waypoint worker. Pure: the caller passes the time.

GEP-3388: retries to a backend may be at most ``percent`` of its requests of the last
``interval`` (defaults 20% over 10 s), but never fewer than ``min_retry_rate`` (default 10
per second) so a quiet backend can still retry. A retry the budget denies is not sent; the
try's own failure is the answer.

What counts: every request that reaches the backend's retry loop is a request (``record``);
every retry taken is a retry (``take``), and retries are not counted again as requests, so
the ratio is retries to client requests, the amplification the budget caps (Linkerd's and
Finagle's reading; the GEP leaves it to implementations). A retry passes when either
allowance has room: with it, ``retries_in(interval) <= percent * requests_in(interval)``
(1000 requests allow 200 retries at 20%), or ``retries_in(min interval) < min count``.

Requests are counted in ``BUCKETS`` slots per interval (a 10 s window steps by 1 s), so
memory does not grow with the request rate; retries are kept as timestamps, which the budget
itself bounds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

BUCKETS = 10


@dataclass(frozen=True, slots=True)
class BudgetParams:
    """GEP-3388's fields with its defaults."""

    percent: int = 20
    interval: float = 10.0
    min_count: int = 10
    min_interval: float = 1.0


class RetryBudget:
    __slots__ = ("params", "_width", "_slots", "_counts", "_retries", "denied")

    def __init__(self, params: BudgetParams) -> None:
        self.params = params
        self._width = params.interval / BUCKETS
        self._slots: list[int] = [-1] * BUCKETS
        """The slot number (time // width) each bucket counts; -1 for none yet."""
        self._counts = [0] * BUCKETS
        self._retries: deque[float] = deque()
        self.denied = 0
        """Retries refused so far (for metrics)."""

    def record(self, now: float) -> None:
        """A request to the backend (not a retry)."""
        slot = int(now // self._width)
        i = slot % BUCKETS
        if self._slots[i] != slot:
            self._slots[i], self._counts[i] = slot, 0
        self._counts[i] += 1

    def requests(self, now: float) -> int:
        """Requests recorded in the last interval (to the bucket)."""
        slot = int(now // self._width)
        slots = zip(self._slots, self._counts, strict=True)
        return sum(c for s, c in slots if slot - BUCKETS < s <= slot)

    def take(self, now: float) -> bool:
        """Whether one more retry may go now; counts it when it may."""
        p = self.params
        retries = self._retries
        horizon = now - max(p.interval, p.min_interval)
        while retries and retries[0] <= horizon:
            retries.popleft()
        in_interval = sum(1 for t in retries if t > now - p.interval)
        in_min = sum(1 for t in retries if t > now - p.min_interval)
        allowed = (
            (in_interval + 1) * 100 <= p.percent * self.requests(now) or in_min < p.min_count
        )
        if allowed:
            retries.append(now)
        else:
            self.denied += 1
        return allowed
