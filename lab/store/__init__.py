"""The embedded object store: Kubernetes-shaped objects in SQLite, with revisions and watches."""

from lab.store.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    InvalidObject,
    NotFound,
    ObjectTooLarge,
    StoreBusy,
    StoreClosed,
    StoreError,
)
from lab.store.events import ADDED, DELETED, MODIFIED, SYNC, Event, EventType
from lab.store.informer import Cache, list_then_watch
from lab.store.objects import Key
from lab.store.store import Action, Store

__all__ = [
    "ADDED",
    "DELETED",
    "MODIFIED",
    "SYNC",
    "Action",
    "AlreadyExists",
    "Cache",
    "Conflict",
    "Event",
    "EventType",
    "Expired",
    "InvalidObject",
    "Key",
    "NotFound",
    "ObjectTooLarge",
    "Store",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
    "list_then_watch",
]
