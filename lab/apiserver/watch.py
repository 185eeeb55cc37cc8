"""watch: a stream of ADDED/MODIFIED/DELETED events from a resourceVersion, with bookmarks.

- No resourceVersion (or "0"): synthetic ADDED events for what exists now, then changes.
- resourceVersion N: every change after N, or, if those events were compacted, one ERROR event
  carrying a ``Status`` with code 410 (reason Expired), as Kubernetes sends; client-go relists.
- ``allowWatchBookmarks``: a BOOKMARK with the revision seen so far after each quiet
  ``bookmark_interval``, so a client can resume from it without replaying.
- ``sendInitialEvents=true`` (client-go's streaming list, on by default in kubectl 1.35+):
  ADDED for every current object whatever the resourceVersion, then a BOOKMARK annotated
  ``k8s.io/initial-events-end``, then changes.
- ``timeoutSeconds``: the stream ends after that long.
- With a label or field selector an object that stops matching arrives as DELETED and one that
  starts matching as ADDED, as the watch cache does.

The stream reads the event log on a private SQLite connection. It wakes at once when this
server commits a write of its kind (``Store.commits``), and otherwise polls
``PRAGMA data_version`` (which changes only when another connection commits) every
``poll_interval`` for writes by other processes. After a read it waits ``min_read_gap``
before the next: the first write after a quiet spell is sent at once, a burst in batches.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lab.apiserver.errors import bad_request, status_object
from lab.apiserver.reads import selector, served
from lab.apiserver.routing import Target, query_flag
from lab.store import Expired, Store, eventlog, schema

WatchEvent = dict[str, Any] | None
"""An event to send, or None: a heartbeat on which the transport checks the client is there."""

_PAGE = 500  # events read per transaction
HEARTBEAT = 1.0  # seconds between liveness checks of an idle watch's client


@dataclass(frozen=True, slots=True)
class WatchSettings:
    # Only for writes by other processes (in a lab none: its API server is the store's only
    # writer, and its own writes wake watches at once); 56 watches polling every 50 ms cost
    # the lab's API server ~50 ms of CPU a second.
    poll_interval: float = 0.25
    bookmark_interval: float = 60.0
    # One read per wake-up per watch would spend the writer's GIL on every write of a burst;
    # a read per gap batches bursts and still sends a lone write at once.
    min_read_gap: float = 0.005
    default_timeout: float = 1800.0


def _revision(query: Mapping[str, str]) -> int | None:
    text = query.get("resourceVersion", "")
    if text in ("", "0"):
        return None
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"resourceVersion {text!r} is not a valid revision") from None


def _timeout(query: Mapping[str, str], default: float) -> float:
    text = query.get("timeoutSeconds")
    if not text:
        return default
    try:
        return max(0.0, float(text))
    except ValueError:
        raise bad_request(f"timeoutSeconds must be a number, got {text!r}") from None


def _gone(requested: int, compacted: int) -> dict[str, Any]:
    message = f"too old resource version: {requested} ({compacted + 1})"
    return {"type": "ERROR", "object": status_object(410, "Expired", message)}


def watch(
    store: Store,
    target: Target,
    query: Mapping[str, str],
    settings: WatchSettings,
    stop: threading.Event,
) -> Iterator[WatchEvent]:
    """Validate the request (raising ApiError before anything is sent), then stream."""
    start = _revision(query)
    initial_end = query_flag(query, "sendInitialEvents")
    if initial_end:
        start = None
    match = selector(target, query)
    has_selector = bool(query.get("labelSelector") or query.get("fieldSelector"))
    bookmarks = query_flag(query, "allowWatchBookmarks")
    timeout = _timeout(query, settings.default_timeout)
    kind, namespace = target.resource.kind, target.namespace

    def in_scope(obj: Mapping[str, Any]) -> bool:
        return namespace is None or obj["metadata"].get("namespace") == namespace

    # What exists now: only for the initial ADDED events, or for a selector's matching set.
    # A watch from a resourceVersion without a selector (an informer's, after its list)
    # needs neither, and decoding every object of the kind cost ~0.7 s of CPU per watch of
    # 10,000 EndpointSlices.
    current: list[dict[str, Any]] = []
    revision = start if start is not None else 0
    if start is None or has_selector:
        current, revision = store.list(kind, namespace)
    matching = {_key(o) for o in current if match(o)} if has_selector else set()
    if start is not None and has_selector and revision > start:
        matching = _matching_at_start(store, kind, start, revision, matching, match)

    def stream() -> Iterator[WatchEvent]:
        deadline = time.monotonic() + timeout
        position = revision if start is None else start
        if start is None:
            for obj in current:
                if match(obj):
                    yield {"type": "ADDED", "object": served(target, obj)}
            if initial_end:
                end = _bookmark(target, revision)
                end["object"]["metadata"]["annotations"] = {"k8s.io/initial-events-end": "true"}
                yield end
        conn = schema.connect(store.path, 30.0)
        commits = store.commits.subscribe((kind,))  # before the first read: no write is lost
        try:
            last_read = 0.0
            seen_version: int | None = None
            behind = False  # the last read was a full page: more events are already there
            last_sent = last_beat = time.monotonic()
            while not stop.is_set() and time.monotonic() < deadline:
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != seen_version or behind:
                    seen_version = version
                    last_read = time.monotonic()
                    try:
                        events, position = _read(conn, position, kind)
                    except Expired as err:
                        yield _gone(err.requested, err.compacted)
                        return
                    for event in events:
                        if not in_scope(event.object):
                            continue
                        out = _filtered(event.type, event.object, match, matching, has_selector)
                        if out is not None:
                            last_sent = time.monotonic()
                            yield {"type": out, "object": served(target, event.object)}
                    behind = len(events) == _PAGE
                    if behind:
                        continue
                if bookmarks and time.monotonic() - last_sent >= settings.bookmark_interval:
                    last_sent = time.monotonic()
                    yield _bookmark(target, position)
                if time.monotonic() - last_beat >= HEARTBEAT:
                    last_beat = time.monotonic()
                    yield None
                gap = last_read + settings.min_read_gap - time.monotonic()
                if gap > 0 and stop.wait(gap):
                    break
                if not stop.is_set():  # set before the wait: Api.stopping also wakes it
                    commits.wait(settings.poll_interval)
        finally:
            commits.close()
            conn.close()

    return stream()


def _read(conn: sqlite3.Connection, position: int, kind: str) -> tuple[list[Any], int]:
    conn.execute("BEGIN")
    try:
        return eventlog.read_events(conn, position, (kind,), _PAGE)
    finally:
        conn.execute("COMMIT")


def _matching_at_start(
    store: Store, kind: str, start: int, revision: int, now: set[tuple[str, str]], match: Any
) -> set[tuple[str, str]]:
    """The selector's matching set as the watcher knew it at ``start``, from the set at
    ``revision`` (the list just read): an object the events in between touched is judged by
    its last event at or before ``start`` (created after it: not matching); when the log no
    longer says, it is taken as matching, so an object that stopped matching in between still
    arrives as DELETED (at worst a DELETED for one the watcher never had, which informers
    ignore) instead of being skipped."""
    touched: dict[tuple[str, str], str] = {}
    conn = schema.connect(store.path, 30.0)
    try:
        position = start
        while position < revision:
            try:
                events, _seen = _read(conn, position, kind)
            except Expired:
                return now  # the stream answers 410 Gone at its first read
            for event in events:
                if event.revision <= revision:
                    touched.setdefault((event.namespace, event.name), event.type)
            if len(events) < _PAGE or not events:
                break
            position = events[-1].revision
        matching = {key for key in now if key not in touched}
        for key, first in touched.items():
            if first == "ADDED":
                continue  # created after start
            conn.execute("BEGIN")
            try:
                before = eventlog.last_event(conn, kind, key[0], key[1], start)
            finally:
                conn.execute("COMMIT")
            if before is None or (before.type != "DELETED" and match(before.object)):
                matching.add(key)
        return matching
    finally:
        conn.close()


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def _filtered(
    type_: str,
    obj: Mapping[str, Any],
    match: Any,
    matching: set[tuple[str, str]],
    has_selector: bool,
) -> str | None:
    """The event type a selecting watcher sees, or None to skip the event."""
    if not has_selector:
        return type_
    key, now = _key(obj), match(obj)
    if type_ == "DELETED":
        if key in matching:
            matching.discard(key)
            return "DELETED"
        return None
    if now:
        was = key in matching
        matching.add(key)
        return type_ if was or type_ == "ADDED" else "ADDED"
    if key in matching:
        matching.discard(key)
        return "DELETED"
    return None


def _bookmark(target: Target, position: int) -> dict[str, Any]:
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": target.resource.kind,
            "apiVersion": target.api_version,
            "metadata": {"resourceVersion": str(position)},
        },
    }
