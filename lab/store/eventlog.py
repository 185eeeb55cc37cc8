"""Reading and compacting the ``events`` table (see :mod:`lab.store.schema`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection

from lab.store.errors import Expired
from lab.store.events import Event, EventType


def meta(conn: sqlite3.Connection) -> tuple[int, int]:
    """(latest revision, compacted revision), read in the caller's transaction."""
    values = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    return int(values["revision"]), int(values["compacted"])


def read_events(
    conn: sqlite3.Connection, after: int, kinds: Collection[str] | None, limit: int
) -> tuple[list[Event], int]:
    """Events with a revision above ``after``, oldest first, at most ``limit`` of them.

    Must run inside a read transaction so the compaction check and the rows agree. Returns the
    events and the revision the caller has now seen everything up to (with a kinds filter this
    moves past events of other kinds, so a watcher never scans them again). Raises
    :class:`Expired` if events after ``after`` were compacted.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    head, compacted = meta(conn)
    if after < compacted:
        raise Expired(after, compacted)
    sql = "SELECT revision, type, kind, namespace, name, body FROM events WHERE revision > ?"
    params: list[object] = [after]
    if kinds is not None:
        kinds = list(kinds)
        if not kinds:
            return [], head
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params.extend(kinds)
    sql += " ORDER BY revision LIMIT ?"
    params.append(limit)
    events = [
        Event(_event_type(type_), rev, kind, ns, name, json.loads(body))
        for rev, type_, kind, ns, name, body in conn.execute(sql, params)
    ]
    seen = events[-1].revision if len(events) == limit else max(head, after)
    return events, seen


def last_event(
    conn: sqlite3.Connection, kind: str, namespace: str, name: str, at: int
) -> Event | None:
    """The object's last event at or before revision ``at``: its state then (None when the
    events that would say were compacted, or it has none). Scans the kind's retained events;
    for the rare watch that starts from an older revision with a selector."""
    _head, compacted = meta(conn)
    row = conn.execute(
        "SELECT revision, type, kind, namespace, name, body FROM events"
        " WHERE kind = ? AND namespace = ? AND name = ? AND revision <= ? AND revision > ?"
        " ORDER BY revision DESC LIMIT 1",
        (kind, namespace, name, at, compacted),
    ).fetchone()
    if row is None:
        return None
    rev, type_, kind_, ns, name_, body = row
    return Event(_event_type(type_), rev, kind_, ns, name_, json.loads(body))


def compact(conn: sqlite3.Connection, head: int, compacted: int, history: int) -> int:
    """Drop events older than the last ``history``; return the new compacted revision.

    Runs inside the write transaction. Deleting a revision range from the integer primary key
    is a single B-tree seek when there is nothing to drop.
    """
    floor = head - history
    if floor <= compacted:
        return compacted
    conn.execute("DELETE FROM events WHERE revision <= ?", (floor,))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'compacted'", (floor,))
    return floor


def _event_type(value: str) -> EventType:
    if value == "ADDED":
        return "ADDED"
    if value == "MODIFIED":
        return "MODIFIED"
    if value == "DELETED":
        return "DELETED"
    raise ValueError(f"unknown event type {value!r} in the events table")
