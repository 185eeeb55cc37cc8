"""The store's SQLite transactions: one thread's connection holder, a write transaction
that gives each write the next revision and its event row, and a read snapshot."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lab.store import eventlog, objects
from lab.store.events import EventType
from lab.store.objects import Key

JSONObject = dict[str, Any]


class Holder:
    """Owns one thread's connection; weak-referenceable, unlike ``sqlite3.Connection``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn


class WriteTxn:
    """The state of one ``BEGIN IMMEDIATE`` transaction: each write takes the next revision."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.head, self.compacted = eventlog.meta(conn)
        self.start = self.head
        self.kinds: set[str] = set()  # written: their watchers are woken at commit

    def get(self, key: Key) -> JSONObject | None:
        row = self.conn.execute(
            "SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?", key
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, type_: EventType, key: Key, obj: JSONObject) -> JSONObject:
        self.head += 1
        obj["metadata"]["resourceVersion"] = str(self.head)
        body = dumps(obj)
        objects.check_size(key, body)
        self.conn.execute(
            "INSERT INTO objects (kind, namespace, name, revision, body) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, namespace, name)"
            " DO UPDATE SET revision = excluded.revision, body = excluded.body",
            (*key, self.head, body),
        )
        self._record(type_, key, body)
        return obj

    def remove(self, key: Key, obj: JSONObject) -> JSONObject:
        self.head += 1
        obj["metadata"]["resourceVersion"] = str(self.head)
        self.conn.execute("DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?", key)
        self._record("DELETED", key, dumps(obj))
        return obj

    def finish(self, history: int) -> None:
        if self.head == self.start:
            return
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (self.head,))
        self.compacted = eventlog.compact(self.conn, self.head, self.compacted, history)

    def _record(self, type_: EventType, key: Key, body: str) -> None:
        self.kinds.add(key[0])
        self.conn.execute(
            "INSERT INTO events (revision, type, kind, namespace, name, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.head, type_, *key, body),
        )


@contextmanager
def read_txn(conn: sqlite3.Connection) -> Iterator[None]:
    """A deferred transaction: every SELECT inside it sees one snapshot."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def dumps(obj: JSONObject) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)
