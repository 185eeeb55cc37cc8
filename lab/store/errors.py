"""Errors raised by the object store. Every one is a :class:`StoreError`."""

from __future__ import annotations


def describe(kind: str, namespace: str, name: str) -> str:
    """Render an object key the way kubectl names objects: ``Kind ns/name`` or ``Kind name``."""
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


class StoreError(Exception):
    """Base class of every error the store raises."""


class InvalidObject(StoreError):
    """The object cannot be stored (no kind or name, or not JSON-serialisable)."""


class ObjectTooLarge(InvalidObject):
    """The object is over the size limit (Kubernetes: 1.5 MiB); nothing was written."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(
            f"{what}: object is {size} bytes, over the {limit} byte (1.5 MiB) limit; "
            "keep large data out of objects"
        )
        self.size = size
        self.limit = limit


class StoreClosed(StoreError):
    """The store was used after :meth:`Store.close`."""


class StoreBusy(StoreError):
    """Another process held the database write lock for longer than the busy timeout."""


class _KeyedError(StoreError):
    def __init__(self, kind: str, namespace: str, name: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.namespace = namespace
        self.name = name


class NotFound(_KeyedError):
    """No object with this key exists."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(kind, namespace, name, f"{describe(kind, namespace, name)} not found")


class AlreadyExists(_KeyedError):
    """``create`` was asked for a key that is already taken."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(kind, namespace, name, f"{describe(kind, namespace, name)} already exists")


class Conflict(_KeyedError):
    """Optimistic concurrency failed: the object changed since the caller read it."""

    def __init__(self, kind: str, namespace: str, name: str, expected: str, actual: str) -> None:
        super().__init__(
            kind,
            namespace,
            name,
            f"{describe(kind, namespace, name)} was modified: expected resourceVersion "
            f"{expected}, found {actual}; get the latest version and retry",
        )
        self.expected = expected
        self.actual = actual


class Expired(StoreError):
    """Events after ``requested`` were compacted away (HTTP 410 Gone): the watcher must relist.

    Events with revision <= ``compacted`` are gone, so ``events_since``/``watch`` accept any
    revision >= ``compacted``; ``oldest_available`` (``compacted + 1``) is the oldest revision an
    event can still carry.
    """

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(
            f"events after revision {requested} were compacted (oldest available revision is "
            f"{compacted + 1}); list again and watch from the list's revision"
        )
        self.requested = requested
        self.compacted = compacted

    @property
    def oldest_available(self) -> int:
        return self.compacted + 1
