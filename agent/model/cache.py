"""Decoding stored objects once per resourceVersion: every long-running watcher (agent,
waypoint, lab controllers) sees the whole cluster on each change, but only what changed
needs the converter again."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from agent.model.convert import ConversionError, from_dict
from agent.model.resource import Resource

log = logging.getLogger("tulle.model")
Key = tuple[str, str, str]


class ModelCache:
    def __init__(self) -> None:
        self._cache: dict[Key, tuple[str, Resource | None]] = {}

    def decode(self, obj: Mapping[str, Any] | Resource) -> Resource | None:
        """The model object, or None (logged once per version) when the stored object is
        invalid. A model object (an informer's transform made it: agent.kube.models) is
        its own model."""
        if not isinstance(obj, Mapping):
            return obj
        meta = obj.get("metadata", {})
        key = (obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))
        version = str(meta.get("resourceVersion", ""))
        hit = self._cache.get(key)
        if hit and hit[0] == version:
            return hit[1]
        try:
            res: Resource | None = from_dict(obj)
        except ConversionError as err:
            log.error("ignoring invalid object: %s", err)
            res = None
        self._cache[key] = (version, res)
        return res

    def decode_all(
        self,
        objects: Iterable[Mapping[str, Any] | Resource],
        kinds: Collection[str] | None = None,
    ) -> list[Resource]:
        """Every valid object (of `kinds`), forgetting cached objects no longer present."""
        wanted = [o for o in objects if kinds is None or _kind(o) in kinds]
        self.forget_missing(
            (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in wanted
            if isinstance(o, Mapping)
        )
        return [res for res in map(self.decode, wanted) if res is not None]

    def forget(self, key: Key) -> None:
        """A deleted object: (kind, namespace, name)."""
        self._cache.pop(key, None)

    def forget_missing(self, present: Iterable[Key]) -> None:
        keep = set(present)
        for key in [k for k in self._cache if k not in keep]:
            del self._cache[key]


def _kind(obj: Mapping[str, Any] | Resource) -> object:
    return obj.get("kind") if isinstance(obj, Mapping) else obj.kind
