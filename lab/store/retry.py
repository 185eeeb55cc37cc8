"""Which store errors are worth retrying, and how long to wait (pure).

SQLite reports a writer holding the lock past the busy timeout ("database is locked"), a
reader racing a checkpoint, a full disk or a failing one ("disk I/O error") and a damaged file
("database disk image is malformed") as :class:`sqlite3.DatabaseError` subclasses; the store
turns a lock wait that ran out into :class:`StoreBusy`. None of them says anything about the
cluster's desired state, so a watcher or controller that meets one must keep what it has
(running pods, programmed maps), log, wait and try again, never act on a partial view.
"""

from __future__ import annotations

import sqlite3

from agent.kube.backoff import Backoff  # one back-off rule for the store and the API
from lab.store.errors import StoreBusy

__all__ = ["STORE_BACKOFF", "Backoff", "is_transient"]


def is_transient(err: BaseException) -> bool:
    """A store error to retry (busy, locked, I/O, corrupt) rather than a caller's bug."""
    return isinstance(err, StoreBusy | sqlite3.DatabaseError)


STORE_BACKOFF = Backoff()
