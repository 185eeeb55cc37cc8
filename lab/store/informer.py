"""List-then-watch, the client-go informer pattern, over :class:`~lab.store.store.Store`.

The callback sees one ``SYNC`` event first, then ordinary ADDED/MODIFIED/DELETED events. A
``SYNC`` event's ``object`` is a Kubernetes-style ``List`` holding every watched object at the
event's revision (``object["items"]``); the callback must replace its whole view with it,
because objects missing from the list were deleted while it was not watching. A second
``SYNC`` arrives whenever the watch fell behind compaction (:class:`Expired`) and relisted.
:class:`Cache` does exactly this and can serve as the callback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from typing import Any

from lab.store.errors import Expired
from lab.store.events import SYNC, Event
from lab.store.objects import Key, key_of
from lab.store.retry import STORE_BACKOFF, Backoff, is_transient
from lab.store.store import Store

log = logging.getLogger("tulle.store")


def sync_event(items: list[dict[str, Any]], revision: int) -> Event:
    """The ``SYNC`` event carrying a full list at ``revision``."""
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": str(revision)},
        "items": items,
    }
    return Event(SYNC, revision, "List", "", "", listed)


def list_then_watch(
    store: Store,
    kinds: Collection[str] | None,
    on_event: Callable[[Event], None],
    stop: threading.Event,
    *,
    poll_interval: float = 0.05,
    backoff: Backoff = STORE_BACKOFF,
) -> None:
    """List ``kinds`` (None: every kind), then watch from the list's revision until ``stop``.

    Blocks the calling thread; run it in a thread of its own. Relists (and emits ``SYNC``) on
    :class:`Expired`. A transient store error (busy, locked, I/O, corrupt: see
    :func:`~lab.store.retry.is_transient`) is logged and retried with capped, jittered
    exponential back-off: the watch resumes after the last event delivered, or the list is
    retried, so the callback never sees a partial view and keeps what it has meanwhile.
    Other errors, and exceptions raised by ``on_event``, propagate and end the loop.
    """
    watched = None if kinds is None else sorted(set(kinds))
    failures = 0
    revision: int | None = None  # None: list first
    while not stop.is_set():
        if failures:
            stop.wait(backoff.delay(failures))
            if stop.is_set():
                return
        if revision is None:
            try:
                items, revision = store.list(watched)
            except Exception as err:
                if not is_transient(err):
                    raise
                failures = _failed(failures, err, "list")
                continue
            failures = 0
            on_event(sync_event(items, revision))
        # A generator: connecting and reading happen in next(), below.
        events = store.watch(revision, watched, poll_interval=poll_interval, stop=stop)
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    return
                except Expired:
                    revision = None
                    break
                except Exception as err:
                    if not is_transient(err):
                        raise
                    failures = _failed(failures, err, "watch")
                    break
                failures = 0
                revision = event.revision
                on_event(event)
        finally:
            events.close()


def _failed(failures: int, err: Exception, what: str) -> int:
    log.warning(
        "store %s failed (%s: %s); retrying with back-off (failure %d in a row)",
        what,
        type(err).__name__,
        err,
        failures + 1,
    )
    return failures + 1


class Cache:
    """An in-memory view fed by :func:`list_then_watch` events (use ``cache.handle``).

    Not thread-safe by itself: read it from the watching thread, or guard it with a lock.
    """

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.revision = 0
        self.synced = False

    def handle(self, event: Event) -> None:
        if event.type == SYNC:
            self.objects = {key_of(obj): obj for obj in event.object["items"]}
            self.synced = True
        elif event.type == "DELETED":
            self.objects.pop((event.kind, event.namespace, event.name), None)
        else:
            self.objects[(event.kind, event.namespace, event.name)] = event.object
        self.revision = event.revision

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))
