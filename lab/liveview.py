"""The lab controller's picture of the cluster: what its informers delivered, plus the answers
to its own writes (thread-safe, no I/O).

A real controller waits for its informer to show its own writes ("expectations"); here a
write's answer from the API server lands in the view at once, so a round that follows never
creates a Pod twice because the watch had not brought the first one yet. Versions only move
forward per object: an informer event older than what the view holds (a write's answer came
first) is dropped, and a deleted object stays deleted until an event newer than its deletion.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from agent.kube.cache import Delta, key_of, revision_of
from agent.model.kinds import UnknownKindError, kind_info

Key = tuple[str, str]  # (namespace, name)
Obj = dict[str, Any]


class LiveView:
    def __init__(self, kinds: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Key, Obj]] = {kind: {} for kind in kinds}
        # kind -> key -> the revision it was deleted at (until an event of that kind passes it)
        self._deleted: dict[str, dict[Key, int]] = {kind: {} for kind in self._objects}
        self.generation = 0  # moves whenever the view changes
        self._changed: set[tuple[str, Key]] = set()  # (kind, key) since take_changes

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._objects)

    def observe(self, kind: str, obj: Obj) -> bool:
        """Take ``obj`` unless the view already holds this version or a newer one."""
        key, rev = key_of(obj), revision_of(obj)
        with self._lock:
            objects = self._objects[kind]
            held = objects.get(key)
            if held is not None and revision_of(held) >= rev:
                return False
            if rev <= self._deleted[kind].get(key, -1):
                return False  # the view already saw this object deleted later
            self._deleted[kind].pop(key, None)
            objects[key] = obj
            self.generation += 1
            self._changed.add((kind, key))
            return True

    def forget(self, kind: str, key: Key, revision: int) -> bool:
        """The object is gone as of ``revision`` (unless the view holds a newer version)."""
        with self._lock:
            objects = self._objects[kind]
            held = objects.get(key)
            if held is not None and revision_of(held) > revision:
                return False
            self._deleted[kind][key] = max(revision, self._deleted[kind].get(key, -1))
            if held is None:
                return False
            del objects[key]
            self.generation += 1
            self._changed.add((kind, key))
            return True

    def feed(self, kind: str) -> Callable[[Delta[Any]], None]:
        """An informer's ``on_delta`` for ``kind``."""

        def on_delta(delta: Delta[Any]) -> None:
            if delta.type == "DELETED":
                self.forget(kind, delta.key, delta.revision)
            else:
                self.observe(kind, as_object(kind, delta.obj))
            self._passed(kind, delta.revision)

        return on_delta

    def _passed(self, kind: str, revision: int) -> None:
        """The informer of ``kind`` is past ``revision``: older deletions need no memory."""
        deleted = self._deleted[kind]
        if deleted:
            with self._lock:
                for key in [k for k, rev in deleted.items() if rev < revision]:
                    del deleted[key]

    def take_changes(self) -> tuple[int, set[tuple[str, Key]]]:
        """The generation, and which objects changed since the last call (then forgotten)."""
        with self._lock:
            changed, self._changed = self._changed, set()
            return self.generation, changed

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects[kind].get((namespace, name))

    def snapshot(self, kinds: Iterable[str] | None = None) -> list[Obj]:
        """The objects of ``kinds`` (default all). Shared, not copied: callers never mutate."""
        with self._lock:
            return [
                obj for kind in (kinds or self._objects) for obj in self._objects[kind].values()
            ]


def as_object(kind: str, obj: Any) -> Obj:
    """A plain dict with its kind: list items on a cluster carry no kind or apiVersion."""
    out = dict(obj)
    out.setdefault("kind", kind)
    if "apiVersion" not in out:
        try:
            out["apiVersion"] = kind_info(kind).api_version
        except UnknownKindError:
            pass  # a kind the model does not read (DaemonSet): the lab server sends its own
    return out
