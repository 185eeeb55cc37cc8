"""Which store errors are worth retrying, and how long to wait (pure).

SQLite reports a writer holding the lock past the busy timeout ("database is locked"), a
reader racing a checkpoint, a full disk or a failing one ("disk I/O error") and a damaged file
("database disk image is malformed") as :class:`sqlite3.DatabaseError` subclasses; the store
turns a lock wait that ran out into :class:`StoreBusy`. None of them says anything about the
cluster's desired state, so a watcher or controller that meets one must keep what it has
(running pods, programmed maps), log, wait and try again, never act on a partial view.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from agent.store.errors import StoreBusy


def is_transient(err: BaseException) -> bool:
    """A store error to retry (busy, locked, I/O, corrupt) rather than a caller's bug."""
    return isinstance(err, StoreBusy | sqlite3.DatabaseError)


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


STORE_BACKOFF = Backoff()
