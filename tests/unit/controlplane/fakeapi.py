"""A dict standing in for the API server's Secrets and ConfigMaps (controlplane.roots.Objects),
with resourceVersions and 409s, and a hook to let "another replica" write first."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from controlplane.roots import Conflict

Obj = dict[str, Any]


class FakeObjects:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.version = 0
        self.before_write: Callable[[Obj], None] | None = None  # a racing replica
        self.writes = 0

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str, str]:
        meta = obj["metadata"]
        return obj["kind"], meta.get("namespace", ""), meta["name"]

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def put(self, obj: Obj) -> Obj:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[self._key(obj)] = stored
        return copy.deepcopy(stored)

    def _race(self, obj: Obj) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook(obj)

    def create(self, obj: Obj) -> Obj:
        self._race(obj)
        if self._key(obj) in self.objects:
            raise Conflict("AlreadyExists")
        self.writes += 1
        return self.put(obj)

    def update(self, obj: Obj) -> Obj:
        self._race(obj)
        live = self.objects.get(self._key(obj))
        if live is None or live["metadata"]["resourceVersion"] != obj["metadata"].get(
            "resourceVersion"
        ):
            raise Conflict("the object has been modified")
        self.writes += 1
        return self.put(obj)
