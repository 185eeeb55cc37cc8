"""Capped exponential back-off with jitter (pure): how long a client waits before trying
again, for the API clients here and the lab store's watchers alike."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential back-off with "equal jitter": the n-th consecutive failure waits
    between half and all of ``min(cap, initial * 2**(n-1))`` seconds, so waits keep growing
    while processes that failed together spread out."""

    initial: float = 0.05
    cap: float = 5.0

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        if failures < 1:
            return 0.0
        ceiling = min(self.cap, self.initial * 2 ** min(failures - 1, 62))
        return ceiling / 2 + rand() * ceiling / 2
