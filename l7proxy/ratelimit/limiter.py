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
        refused = self._refusal(buckets, now)
        if refused is not None:
            return refused
        tightest: Verdict | None = None
        charged = self._charged(buckets, now)
        self._tat.update(charged)
        for (key, new_tat), (_, rate) in zip(charged, buckets, strict=True):
            interval = 1.0 / rate
            tolerance = (rate - 1) * interval
            left = max(0, math.floor((now + tolerance - new_tat) / interval + 1e-9) + 1)
            verdict = Verdict(True, rate, left, new_tat - now, 0.0, key)
            if tightest is None or left < tightest.remaining:
                tightest = verdict
        self._prune_if_full(now)
        assert tightest is not None
        return tightest

    def admit(self, buckets: Sequence[tuple[Hashable, int]], now: float) -> Verdict | None:
        """``take`` for a caller that needs only refusals (the waypoint answers those
        alone): None when every bucket admits the request (each charged, as ``take``
        charges), else ``take``'s refusal (none charged). No verdict is built per request
        that passes."""
        refused = self._refusal(buckets, now)
        if refused is not None:
            return refused
        self._tat.update(self._charged(buckets, now))
        self._prune_if_full(now)
        return None

    def admit_one(self, key: Hashable, rate: int, now: float) -> Verdict | None:
        """``admit(((key, rate),), now)`` for one bucket (a Service's ``total``: the
        waypoint's common case), without the lists: the same arithmetic, the same state."""
        if rate < 1:
            raise ValueError(f"bucket {key!r}: rate {rate} must be at least 1")
        interval = 1.0 / rate
        tat = self._tat.get(key, now)
        if tat < now:
            tat = now
        if tat - now - (rate - 1) * interval > 1e-9:
            return self.admit(((key, rate),), now)  # refused: admit's verdict
        self._tat[key] = tat + interval
        if len(self._tat) > PRUNE_AT:
            self.prune(now)
        return None

    def _refusal(self, buckets: Sequence[tuple[Hashable, int]], now: float) -> Verdict | None:
        """The bucket that frees up last among those that would refuse, if any."""
        if not buckets:
            raise ValueError("take: no buckets")
        refused: Verdict | None = None
        tat_of = self._tat.get
        for key, rate in buckets:
            if rate < 1:
                raise ValueError(f"bucket {key!r}: rate {rate} must be at least 1")
            interval = 1.0 / rate
            tat = max(tat_of(key, now), now)
            wait = tat - now - (rate - 1) * interval  # a burst of ``rate`` requests
            if wait > 1e-9 and (refused is None or wait > refused.retry_after):
                refused = Verdict(False, rate, 0, tat - now, wait, key)
        return refused

    def _charged(self, buckets: Sequence[tuple[Hashable, int]],
                 now: float) -> list[tuple[Hashable, float]]:
        """Each bucket's TAT after one more request, all from the TATs before it."""
        tat_of = self._tat.get
        return [(key, max(tat_of(key, now), now) + 1.0 / rate) for key, rate in buckets]

    def _prune_if_full(self, now: float) -> None:
        if len(self._tat) > PRUNE_AT:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget buckets that are full again (their TAT has passed)."""
        self._tat = {k: t for k, t in self._tat.items() if t > now}
