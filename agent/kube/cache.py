"""The typed cluster state one informer keeps (pure): objects by (namespace, name), and the
revision it has seen up to. It turns list results and watch events into deltas, applying each
object version at most once: a replayed event (a watch resumed from an older revision) is
dropped, and a relist yields only what changed since the cache's view."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Key = tuple[str, str]
DeltaType = Literal["ADDED", "MODIFIED", "DELETED"]


class CacheError(ValueError):
    """An object or event the cache cannot place (no name, no resourceVersion)."""


@dataclass(frozen=True, slots=True)
class Delta(Generic[T]):
    type: DeltaType
    key: Key
    obj: T  # the new object; for DELETED, the last version seen
    revision: int
    resync: bool = False  # from a (re)list: earlier changes to the object may be folded in


def meta_of(obj: Any) -> Any:
    meta = obj.get("metadata") if isinstance(obj, dict) else getattr(obj, "metadata", None)
    if meta is None:
        raise CacheError(f"object without metadata: {obj!r:.200}")
    return meta


def _field(meta: Any, name: str) -> Any:
    return meta.get(name) if isinstance(meta, dict) else getattr(meta, name, None)


def key_of(obj: Any) -> Key:
    meta = meta_of(obj)
    name, namespace = _field(meta, "name"), _field(meta, "namespace") or ""
    if not name or not isinstance(name, str) or not isinstance(namespace, str):
        raise CacheError(f"object without a string metadata.name (and namespace): {obj!r:.200}")
    return (namespace, name)


def revision_of(obj: Any) -> int:
    meta = meta_of(obj)
    raw = _field(meta, "resourceVersion")
    if raw is None and not isinstance(meta, dict):  # an agent.model object (a transform's)
        raw = getattr(meta, "resource_version", None)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise CacheError(f"resourceVersion {raw!r} is not a revision number") from None


@dataclass
class Cache(Generic[T]):
    objects: dict[Key, T] = field(default_factory=dict)
    revision: int = 0  # everything up to here is reflected in ``objects``

    def get(self, namespace: str, name: str) -> T | None:
        return self.objects.get((namespace, name))

    def replace(self, items: Iterable[T], revision: int) -> list[Delta[T]]:
        """A full list at ``revision``: deltas from the cache's view to the list's."""
        fresh = {key_of(o): o for o in items}
        deltas: list[Delta[T]] = []
        for key, gone in self.objects.items():
            if key not in fresh:
                deltas.append(Delta("DELETED", key, gone, revision, resync=True))
        for key, obj in fresh.items():
            old = self.objects.get(key)
            if old is None:
                deltas.append(Delta("ADDED", key, obj, revision_of(obj), resync=True))
            elif revision_of(old) != revision_of(obj):
                deltas.append(Delta("MODIFIED", key, obj, revision_of(obj), resync=True))
            else:  # unchanged: keep the version consumers hold, not a second copy of it
                fresh[key] = old
        self.objects = fresh
        self.revision = revision
        return deltas

    def apply(self, type_: str, obj: T) -> Delta[T] | None:
        """One watch event; None when it changes nothing the cache has not already seen."""
        rev = revision_of(obj)
        if type_ == "BOOKMARK":  # carries only a revision: no name, no namespace
            self.revision = max(self.revision, rev)
            return None
        key = key_of(obj)
        if rev <= self.revision:
            return None  # replayed: the cache already reflects this revision
        self.revision = rev
        old = self.objects.get(key)
        if type_ == "DELETED":
            if old is None:
                return None
            del self.objects[key]
            return Delta("DELETED", key, obj, rev)
        if type_ not in ("ADDED", "MODIFIED"):
            raise CacheError(f"unknown watch event type {type_!r}")
        self.objects[key] = obj
        return Delta("ADDED" if old is None else "MODIFIED", key, obj, rev)
