"""Transient store errors (busy, locked, I/O, corrupt) are retried with back-off by the
informer: the callback never sees a partial view, nothing is delivered twice, the loop lives."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lab.store import Conflict, Event, Store, StoreBusy, StoreClosed
from lab.store.informer import list_then_watch
from lab.store.retry import Backoff, is_transient

from .conftest import svc

FAST = Backoff(initial=0.001, cap=0.01)


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        (sqlite3.OperationalError("database is locked"), True),
        (sqlite3.OperationalError("disk I/O error"), True),
        (sqlite3.DatabaseError("database disk image is malformed"), True),
        (StoreBusy("the store is locked by another writer"), True),
        (Conflict("Service", "default", "web", "1", "2"), False),
        (StoreClosed("closed"), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_errors_are_transient(err: Exception, transient: bool) -> None:
    assert is_transient(err) is transient


@pytest.mark.parametrize(
    ("failures", "low", "high"),
    [
        (0, 0.0, 0.0),
        (1, 0.025, 0.05),
        (2, 0.05, 0.1),
        (4, 0.2, 0.4),
        (7, 1.6, 3.2),
        (8, 2.5, 5.0),  # capped
        (1000, 2.5, 5.0),
    ],
)
def test_backoff_doubles_to_a_cap_with_jitter(failures: int, low: float, high: float) -> None:
    backoff = Backoff(initial=0.05, cap=5.0)
    assert backoff.delay(failures, rand=lambda: 0.0) == pytest.approx(low)
    assert backoff.delay(failures, rand=lambda: 0.999999) == pytest.approx(high)


class FlakyStore:
    """A real store whose list and watch fail the way SQLite does, a set number of times."""

    def __init__(self, store: Store, list_errors: list[Exception], watch_errors: list[Exception]):
        self.store = store
        self.list_errors = list_errors
        self.watch_errors = watch_errors  # each ends one watch after its first event
        self.lists = 0

    def list(self, kinds: Any = None) -> tuple[list[dict[str, Any]], int]:
        self.lists += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        return self.store.list(kinds)

    def watch(self, revision: int, kinds: Any = None, **kw: Any) -> Iterator[Event]:
        if not self.watch_errors:
            yield from self.store.watch(revision, kinds, **kw)
            return
        err = self.watch_errors.pop(0)
        for event in self.store.watch(revision, kinds, **kw):
            yield event
            raise err
        raise err


def test_list_and_watch_errors_are_retried_without_loss_or_duplicates(store: Store) -> None:
    store.apply(svc("a"))
    store.apply(svc("b"))
    flaky = FlakyStore(
        store,
        list_errors=[sqlite3.OperationalError("database is locked"), StoreBusy("busy")],
        watch_errors=[
            sqlite3.OperationalError("disk I/O error"),
            sqlite3.DatabaseError("database disk image is malformed"),
        ],
    )
    seen: list[Event] = []
    synced = threading.Event()
    done = threading.Event()
    stop = threading.Event()
    crashed: list[BaseException] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        synced.set()
        if len(seen) == 5:
            done.set()

    def run() -> None:
        try:
            list_then_watch(flaky, ["Service"], on_event, stop, poll_interval=0.005, backoff=FAST)  # type: ignore[arg-type]
        except BaseException as err:  # the old loop died here
            crashed.append(err)
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert synced.wait(20)
    for name in ("c", "d", "e", "f"):
        store.apply(svc(name))
    done.wait(20)
    stop.set()
    thread.join(10)
    assert not crashed
    assert not thread.is_alive()
    assert [e.type for e in seen] == ["SYNC", "ADDED", "ADDED", "ADDED", "ADDED"]
    assert [o["metadata"]["name"] for o in seen[0].object["items"]] == ["a", "b"]
    assert [e.name for e in seen[1:]] == ["c", "d", "e", "f"]  # the watch resumed: no relist
    assert flaky.lists == 3


def test_other_errors_still_end_the_loop(store: Store) -> None:
    flaky = FlakyStore(store, list_errors=[ValueError("not a store error")], watch_errors=[])
    with pytest.raises(ValueError, match="not a store error"):
        list_then_watch(flaky, None, lambda e: None, threading.Event(), backoff=FAST)  # type: ignore[arg-type]
