"""The SQLite file behind the store: connections, pragmas and tables.

Tables:
- ``meta``: ``revision`` (latest revision written) and ``compacted`` (events with a revision
  at or below it have been deleted).
- ``objects``: the current state, one row per (kind, namespace, name).
- ``events``: one row per write, keyed by its revision; revisions are gap-free because every
  write happens under SQLite's single write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from lab.store.errors import StoreBusy, StoreError

SCHEMA_VERSION = 1

_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0), ('compacted', 0)",
    "CREATE TABLE IF NOT EXISTS objects ("
    " kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,"
    " revision INTEGER NOT NULL, body TEXT NOT NULL,"
    " PRIMARY KEY (kind, namespace, name)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS events ("
    " revision INTEGER PRIMARY KEY, type TEXT NOT NULL, kind TEXT NOT NULL,"
    " namespace TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL)",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Open one connection in autocommit mode; callers issue BEGIN/COMMIT themselves.

    ``check_same_thread`` is off only so that :meth:`Store.close` may close every thread's
    connection; each connection is still used by a single thread.
    """
    conn = sqlite3.connect(
        str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    # WAL makes commits durable against process crashes; NORMAL skips the fsync per commit.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def initialise(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """Create the directory, file (mode 0600), WAL mode and tables if missing.

    Safe to run from many processes at once. Returns the connection it used.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    conn = connect(path, busy_timeout)
    try:
        _enable_wal(conn, path, busy_timeout)
        begin_immediate(conn)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} has store schema {version}, newer than this build's "
                    f"{SCHEMA_VERSION}; upgrade tulle"
                )
            for statement in _TABLES:
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except BaseException:
        conn.close()
        raise
    return conn


def begin_immediate(conn: sqlite3.Connection) -> None:
    """Take the write lock now (waiting up to the busy timeout), not at the first write."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as err:
        if _is_busy(err):
            raise StoreBusy(f"the store is locked by another writer: {err}") from err
        raise


def _enable_wal(conn: sqlite3.Connection, path: Path, busy_timeout: float) -> None:
    # Switching to WAL needs an exclusive lock and SQLite may report "busy" without waiting
    # for the busy handler, so retry by hand. Once set, WAL mode is stored in the file.
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as err:
            if not _is_busy(err) or time.monotonic() > deadline:
                raise StoreBusy(f"cannot enable WAL mode on {path}: {err}") from err
            time.sleep(0.02)
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot enable WAL mode on {path} (journal_mode is {mode})")


def _is_busy(err: sqlite3.OperationalError) -> bool:
    text = str(err).lower()
    return "locked" in text or "busy" in text
