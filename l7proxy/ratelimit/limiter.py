"""Rate limiting arithmetic (pure): GCRA, the generic cell rate algorithm, one theoretical
arrival time (TAT) per bucket; no clock of its own (``now`` is passed in, in seconds).

A limit of ``rate`` requests per second has emission interval T = 1/rate and admits a
burst of ``rate`` requests (one second's worth, as Linkerd's proxy does with the governor
crate's ``Quota::per_second``), so over any window of w seconds at most rate * (w + 1) pass,
and a client sending steadily above the limit gets ``rate`` per second. A refused request
costs nothing, so several limits (a Service's total and the caller's own) are checked first
and charged only when all admit (``Limiter.take``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

PRUNE_AT = 4096
"""Buckets kept before the idle ones (TAT in the past: as good as new) are dropped."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one request against its tightest limit. ``remaining``: requests the
    caller may still send now; ``reset``: seconds until its full burst is back;
    ``retry_after``: seconds until the next request would pass (0 when this one passed)."""

    allowed: bool
    limit: int
    remaining: int
    reset: float
    retry_after: float
    bucket: Hashable = None


class Limiter:
    """Buckets by key; each call names the buckets a request is charged to and their rates."""

    def __init__(self) -> None:
        self._tat: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._tat)

    def take(self, buckets: Sequence[tuple[Hashable, int]], now: float) -> Verdict:
        """Charge one request to every bucket in ``buckets`` ((key, requests per second),
        rate >= 1) if each admits it; else charge none. The verdict names the refusing
        bucket (the one that frees up last), or, when admitted, the one with the fewest
        requests left."""
        if not buckets:
            raise ValueError("take: no buckets")
        refused: Verdict | None = None
        tats = []
        for key, rate in buckets:
            if rate < 1:
                raise ValueError(f"bucket {key!r}: rate {rate} must be at least 1")
            interval = 1.0 / rate
            tolerance = (rate - 1) * interval  # burst of ``rate`` requests
            tat = max(self._tat.get(key, now), now)
            wait = tat - now - tolerance
            if wait > 1e-9:
                if refused is None or wait > refused.retry_after:
                    refused = Verdict(False, rate, 0, tat - now, wait, key)
            tats.append((key, rate, tat + interval, tolerance, interval))
        if refused is not None:
            return refused
        tightest: Verdict | None = None
        for key, rate, new_tat, tolerance, interval in tats:
            self._tat[key] = new_tat
            left = max(0, math.floor((now + tolerance - new_tat) / interval + 1e-9) + 1)
            verdict = Verdict(True, rate, left, new_tat - now, 0.0, key)
            if tightest is None or left < tightest.remaining:
                tightest = verdict
        if len(self._tat) > PRUNE_AT:
            self.prune(now)
        assert tightest is not None
        return tightest

    def prune(self, now: float) -> None:
        """Forget buckets that are full again (their TAT has passed)."""
        self._tat = {k: t for k, t in self._tat.items() if t > now}
