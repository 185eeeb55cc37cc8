"""An embedded, multi-process object store with revisions and watches.

It stands in for the Kubernetes API server and its etcd: node agents, lab controllers, DNS
servers and the CLI open the same SQLite file from separate processes. Every write gets the
next revision of one global, gap-free counter and an event row; readers list at a revision and
watch from it, and relist when the events they need were compacted (:class:`Expired`, the
equivalent of HTTP 410 Gone).

Threads: the store keeps one SQLite connection per thread (and starts afresh in a forked
child), so a single ``Store`` may be shared by threads. Each ``watch`` opens a connection of
its own.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Collection, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from lab.store import eventlog, objects, schema
from lab.store.commits import CommitSignal
from lab.store.errors import AlreadyExists, Conflict, NotFound, StoreClosed
from lab.store.events import Event
from lab.store.objects import Key
from lab.store.txn import Holder, WriteTxn, read_txn

Action = Literal["created", "configured", "unchanged"]
JSONObject = dict[str, Any]


class Store:
    """Kubernetes-shaped objects (plain dicts) keyed by (kind, namespace, name).

    ``history`` is how many of the latest events are kept for watchers; older ones are
    compacted as writes happen. ``busy_timeout`` (seconds) bounds the wait for another
    process's write lock before :class:`~lab.store.errors.StoreBusy` is raised.
    """

    def __init__(
        self, path: str | Path, *, history: int = 10000, busy_timeout: float = 30.0
    ) -> None:
        if history < 1:
            raise ValueError(f"history must be at least 1, got {history}")
        self.path = Path(path)
        self.history = history
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        self._local = threading.local()
        self._holders: weakref.WeakSet[Holder] = weakref.WeakSet()
        self._abandoned: list[Holder] = []
        self.commits = CommitSignal()  # this process's writes wake watchers of their kinds
        self._adopt(schema.initialise(self.path, busy_timeout))

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection. Watches already running keep their own."""
        with self._lock:
            self._closed = True
            holders = builtins.list(self._holders)
            self._holders = weakref.WeakSet()
        for holder in holders:
            holder.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------

    def apply(self, obj: Mapping[str, Any]) -> tuple[JSONObject, Action]:
        """Create or update by key, like ``kubectl apply``; see :meth:`apply_many`."""
        return self.apply_many([obj])[0]

    def apply_many(
        self, objs: Iterable[Mapping[str, Any]]
    ) -> builtins.list[tuple[JSONObject, Action]]:
        """Apply every object in one transaction: all are written or none is.

        Each result is (stored object, action): "created", "configured", or "unchanged" when
        only server-set fields differ (then nothing is written). An update keeps uid and
        creationTimestamp, and keeps the stored ``status``: an incoming one is ignored (only
        :meth:`update_status` writes status). A create starts without status.
        The incoming ``resourceVersion`` is ignored: apply is last-writer-wins.
        """
        prepared = [objects.normalise(obj) for obj in objs]
        with self._write() as txn:
            return [self._apply_in(txn, obj) for obj in prepared]

    def create(self, obj: Mapping[str, Any]) -> JSONObject:
        """Create a new object; raises :class:`AlreadyExists` if the key is taken."""
        new = objects.normalise(obj)
        key = objects.key_of(new)
        with self._write() as txn:
            if txn.get(key) is not None:
                raise AlreadyExists(*key)
            return txn.put("ADDED", key, self._prepare_create(new))

    def update(
        self, obj: Mapping[str, Any], *, expect_resource_version: str | None = None
    ) -> JSONObject:
        """Replace an existing object (server fields and the stored status are kept).

        The expected resourceVersion is ``expect_resource_version`` if given, else the object's
        own ``metadata.resourceVersion`` if it has one; a mismatch raises :class:`Conflict`.
        Raises :class:`NotFound` if there is no such object. A no-op update writes nothing
        and returns the stored object.
        """
        new = objects.normalise(obj)
        key = objects.key_of(new)
        expected = expect_resource_version or objects.resource_version(new)
        with self._write() as txn:
            existing = self._existing(txn, key, expected)
            merged, changed = objects.merge_update(existing, new)
            return txn.put("MODIFIED", key, merged) if changed else existing

    def update_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        expect_resource_version: str | None = None,
    ) -> JSONObject:
        """Replace only ``status``; never bumps the generation; no write if it is identical.

        The status subresource: the one way status is written (controllers, kubelet, agents).
        """
        key = (kind, namespace, name)
        with self._write() as txn:
            existing = self._existing(txn, key, expect_resource_version)
            updated, changed = objects.with_status(existing, status)
            return txn.put("MODIFIED", key, updated) if changed else existing

    def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        expect_resource_version: str | None = None,
    ) -> JSONObject | None:
        """Delete and return the object (its resourceVersion is the deletion's), or None."""
        key = (kind, namespace, name)
        with self._write() as txn:
            existing = txn.get(key)
            if existing is None:
                return None
            self._check_version(key, existing, expect_resource_version)
            return txn.remove(key, existing)

    def delete_many(self, keys: Iterable[Key]) -> builtins.list[JSONObject]:
        """Delete several objects in one transaction; returns those that existed."""
        deleted = []
        with self._write() as txn:
            for key in keys:
                existing = txn.get(key)
                if existing is not None:
                    deleted.append(txn.remove(key, existing))
        return deleted

    # -- reads -------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> JSONObject | None:
        row = (
            self._conn()
            .execute(
                "SELECT body FROM objects WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
            .fetchone()
        )
        return None if row is None else json.loads(row[0])

    def list(
        self,
        kind: str | Collection[str] | None = None,
        namespace: str | None = None,
        label_selector: Mapping[str, str] | None = None,
    ) -> tuple[builtins.list[JSONObject], int]:
        """Objects sorted by (kind, namespace, name), and the revision they are consistent at.

        ``kind`` may also be a collection of kinds. ``label_selector`` is equality-based: an
        object matches when it carries every given label with the given value.
        """
        sql = "SELECT body FROM objects"
        clauses: builtins.list[str] = []
        params: builtins.list[str] = []
        if kind is not None:
            kinds = [kind] if isinstance(kind, str) else builtins.list(kind)
            clauses.append(f"kind IN ({','.join('?' * len(kinds))})" if kinds else "0")
            params.extend(kinds)
        if namespace is not None:
            clauses.append("namespace = ?")
            params.append(namespace)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY kind, namespace, name"
        with self._read() as conn:
            revision, _ = eventlog.meta(conn)
            rows = conn.execute(sql, params).fetchall()
        found = (json.loads(body) for (body,) in rows)
        return [o for o in found if objects.matches_labels(o, label_selector)], revision

    def field_values(self, kind: str, json_path: str) -> builtins.list[tuple[str, str, Any]]:
        """``(namespace, name, value)`` of one JSON field (SQLite path, e.g. ``$.spec.clusterIP``)
        for every object of ``kind``: a scan in SQLite, without decoding whole objects, for
        admission checks that run on every write (e.g. which ClusterIPs are taken)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT namespace, name, json_extract(body, ?) FROM objects WHERE kind = ?",
                (json_path, kind),
            ).fetchall()
        return [(ns, name, value) for ns, name, value in rows]

    def holders(self, kind: str, json_path: str, value: Any) -> builtins.list[tuple[str, str]]:
        """``(namespace, name)`` of each object of ``kind`` whose field equals ``value``,
        through the field's index (``schema.INDEXED_FIELDS``; other fields are refused)."""
        if (kind, json_path) not in schema.INDEXED_FIELDS:
            raise ValueError(f"{kind} {json_path} has no index (see schema.INDEXED_FIELDS)")
        # Literals, not parameters: SQLite uses a partial expression index only for a query
        # whose terms match its definition textually (both come from INDEXED_FIELDS).
        sql = (
            "SELECT namespace, name FROM objects"
            f" WHERE kind = '{kind}' AND json_extract(body, '{json_path}') = ?"
        )
        return [(ns, name) for ns, name in self._conn().execute(sql, (value,)).fetchall()]

    def revision(self) -> int:
        """The latest revision written (0 for an empty, never-written store)."""
        row = self._conn().execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0])

    def events_since(
        self, revision: int, kinds: Collection[str] | None = None, limit: int = 1000
    ) -> builtins.list[Event]:
        """Up to ``limit`` events with a revision above ``revision``, oldest first.

        Raises :class:`~lab.store.errors.Expired` if some of them were compacted away.
        """
        with self._read() as conn:
            events, _ = eventlog.read_events(conn, revision, kinds, limit)
        return events

    def watch(
        self,
        revision: int,
        kinds: Collection[str] | None = None,
        *,
        poll_interval: float = 0.05,
        stop: threading.Event | None = None,
    ) -> Generator[Event, None, None]:
        """Yield every event after ``revision`` as it happens, in revision order.

        Blocks between events; returns once ``stop`` is set. Raises
        :class:`~lab.store.errors.Expired` when the events it needs were compacted (at the
        start, or later if the consumer falls more than ``history`` writes behind).

        The idle poll is ``PRAGMA data_version`` on a private connection, which changes only
        when another connection commits; it reads no table pages.
        """
        kinds = None if kinds is None else frozenset(kinds)
        conn = schema.connect(self.path, self._busy_timeout)
        try:
            position = revision
            seen_version: int | None = None
            while not (stop is not None and stop.is_set()):
                if self._closed:
                    raise StoreClosed(f"store {self.path} was closed during a watch")
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version == seen_version:
                    if stop is not None:
                        stop.wait(poll_interval)
                    else:
                        time.sleep(poll_interval)
                    continue
                seen_version = version
                while True:
                    with read_txn(conn):
                        events, position = eventlog.read_events(conn, position, kinds, 500)
                    for event in events:
                        if stop is not None and stop.is_set():
                            return
                        yield event
                    if len(events) < 500:
                        break
        finally:
            conn.close()

    # -- internals ---------------------------------------------------------------------------

    def _apply_in(self, txn: WriteTxn, obj: JSONObject) -> tuple[JSONObject, Action]:
        key = objects.key_of(obj)
        existing = txn.get(key)
        if existing is None:
            return txn.put("ADDED", key, self._prepare_create(obj)), "created"
        merged, changed = objects.merge_update(existing, obj)
        if not changed:
            return existing, "unchanged"
        return txn.put("MODIFIED", key, merged), "configured"

    @staticmethod
    def _prepare_create(obj: JSONObject) -> JSONObject:
        return objects.prepare_create(obj, uid=str(uuid.uuid4()), now=objects.now_rfc3339())

    def _existing(self, txn: WriteTxn, key: Key, expected: str | None) -> JSONObject:
        existing = txn.get(key)
        if existing is None:
            raise NotFound(*key)
        self._check_version(key, existing, expected)
        return existing

    @staticmethod
    def _check_version(key: Key, existing: JSONObject, expected: str | None) -> None:
        actual = objects.resource_version(existing) or ""
        if expected is not None and str(expected) != actual:
            raise Conflict(*key, expected=str(expected), actual=actual)

    @contextmanager
    def _write(self) -> Iterator[WriteTxn]:
        conn = self._conn()
        schema.begin_immediate(conn)
        try:
            txn = WriteTxn(conn)
            yield txn
            txn.finish(self.history)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if txn.kinds:
            self.commits.notify(txn.kinds)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with read_txn(conn):
            yield conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosed(f"store {self.path} is closed")
        if os.getpid() != self._pid:
            self._forget_parent_connections()
        holder: Holder | None = getattr(self._local, "holder", None)
        if holder is None:
            holder = self._adopt(schema.connect(self.path, self._busy_timeout))
        return holder.conn

    def _adopt(self, conn: sqlite3.Connection) -> Holder:
        holder = Holder(conn)
        self._local.holder = holder
        with self._lock:
            self._holders.add(holder)
        return holder

    def _forget_parent_connections(self) -> None:
        # SQLite connections must not cross fork(): leave the parent's untouched (never closed
        # here, since closing could disturb locks the parent holds) and open fresh ones.
        with self._lock:
            self._abandoned.extend(self._holders)
            self._holders = weakref.WeakSet()
            self._local = threading.local()
            self._pid = os.getpid()
