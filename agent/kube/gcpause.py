"""Cyclic garbage collection paused while a process builds 100,000s of long-lived objects
(a list's JSON decode, a datapath resync), from any thread; and the agent's steady-state
setting of the collector (``tune``).

Each collection walks every tracked container: decoding 10,000 EndpointSlices spent 0.8 of
its 0.9 s in collections that found nothing to free. ``gc.disable`` is process-wide, so the
pauses of concurrent threads (one informer per kind, the sync thread) are counted: the
collector comes back when the last one ends, and only if it was on before the first began.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The youngest generation is collected after this many container allocations (net of
# frees) instead of CPython's 700. The agent's waypoint flow path leaves ~5 tracked objects
# per flow alive until its batch is done (~7.5 with the request split: its RequestSplit,
# the column's row), so at 700 a collection came every ~140 flows (~90 with the split)
# and found next to nothing to free (226 objects in 123 collections over 10,496 flows):
# ~3,300 of the split's ~14,300 instructions per flow were
# those collections (callgrind, bench/results/tracecost-2026-12-06-s13.md). At 10,000,
# what cycles the agent does make wait a little longer; the older generations keep their
# factors.
YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()


def tune() -> None:
    """The agent's collector setting for its life (``YOUNG_THRESHOLD``)."""
    _young, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


_depth = 0
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


class Hold:
    """A pause held across threads until ``release`` (idempotent): the agent holds one from
    its start to its first sync, and freezes what that sync built before releasing it, so
    the collector never walks the 100,000s of objects a first list and plan leave behind
    (after a long pause, the first collection walks everything the pause let through)."""

    def __init__(self) -> None:
        self._cm: contextlib.AbstractContextManager[None] | None = paused()
        self._cm.__enter__()
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)
