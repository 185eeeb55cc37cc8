"""What an informer keeps of each object it decodes (pure): client-go's "transform" step.

- ``metadata.managedFields`` goes: no Tulle process reads it (server-side apply's
  bookkeeping), and it is half of a Service's memory (3.9 -> 1.8 KB per object).
- An EndpointSlice's endpoints share their ``conditions`` dict with every other endpoint
  whose conditions are equal (at most 27 kinds: ready, serving, terminating each true, false
  or unset), and their ``nodeName`` and ``zone`` strings, and their ``targetRef``'s
  ``kind`` and ``namespace``, are interned: 100,000 endpoints held 100,000 equal three-key
  dicts (23 MB) and 100,000 copies of a few node names (and of "Pod" and its namespace:
  ~10 MB, kept by the models too).

Objects from an informer are shared, read-only values (as client-go's cache objects are):
a consumer that wants to change one copies it first.
"""

from __future__ import annotations

import sys
from typing import Any

_CONDITION_KEYS = frozenset({"ready", "serving", "terminating"})
_conditions: dict[tuple[tuple[str, bool], ...], dict[str, bool]] = {}


def compact(kind: str, obj: Any) -> None:
    """Compacts ``obj`` (a decoded object of ``kind``) in place."""
    if not isinstance(obj, dict):
        return
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    if kind == "EndpointSlice":
        endpoints = obj.get("endpoints")
        if isinstance(endpoints, list):
            for endpoint in endpoints:
                if isinstance(endpoint, dict):
                    _compact_endpoint(endpoint)


def _compact_endpoint(endpoint: dict[str, Any]) -> None:
    conditions = endpoint.get("conditions")
    if type(conditions) is dict and conditions.keys() <= _CONDITION_KEYS:
        if all(type(v) is bool for v in conditions.values()):
            key = tuple(sorted(conditions.items()))
            endpoint["conditions"] = _conditions.setdefault(key, conditions)
    _intern(endpoint, ("nodeName", "zone"))
    target = endpoint.get("targetRef")
    if type(target) is dict:
        _intern(target, ("kind", "namespace"))


def _intern(obj: dict[str, Any], fields: tuple[str, ...]) -> None:
    for field in fields:
        value = obj.get(field)
        if type(value) is str:
            obj[field] = sys.intern(value)
