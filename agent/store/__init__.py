"""The embedded object store: Kubernetes-shaped objects in SQLite, with revisions and watches."""

from agent.store.errors import (
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
from agent.store.events import ADDED, DELETED, MODIFIED, SYNC, Event, EventType
from agent.store.informer import Cache, list_then_watch
from agent.store.objects import Key
from agent.store.store import Action, Store

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
