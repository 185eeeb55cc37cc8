"""The change events the store records for every write, and that watchers receive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

EventType = Literal["ADDED", "MODIFIED", "DELETED", "SYNC"]

ADDED: Final = "ADDED"
MODIFIED: Final = "MODIFIED"
DELETED: Final = "DELETED"
SYNC: Final = "SYNC"
"""Only emitted by :func:`lab.store.informer.list_then_watch`, never stored: ``object`` is a
``List`` (``{"kind": "List", "metadata": {"resourceVersion": ...}, "items": [...]}``) holding
every watched object at ``revision``; the receiver replaces its whole cache with it."""


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one object.

    ``object`` is the full object after the change; for ``DELETED`` it is the last state, with
    ``metadata.resourceVersion`` set to the deletion's revision (as Kubernetes does).
    """

    type: EventType
    revision: int
    kind: str
    namespace: str
    name: str
    object: dict[str, Any]
