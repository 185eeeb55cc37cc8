"""A process's one cluster state (pure): the watched kinds' objects as Kubernetes-shaped dicts,
keyed (kind, namespace, name), fed by one informer per kind (agent.kube.source).

Each kind lists and relists on its own (a 410 Gone is per watch), so a relist of one kind
arrives as that kind's deltas only: the objects of every other kind stay as they are. (The
store's ``SYNC`` event replaced a whole view; a per-kind relist must not.) The state is
``synced`` once every kind has been listed; before that it is partial and consumers wait.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from agent.kube.cache import Delta

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name); cluster-scoped kinds use namespace ""


class ClusterState:
    def __init__(self, kinds: Collection[str]) -> None:
        self.kinds = tuple(kinds)
        self.objects: dict[Key, Obj] = {}
        self.revision = 0  # the highest revision seen, of any kind
        self.listed: set[str] = set()
        self._counts: dict[str, int] = dict.fromkeys(self.kinds, 0)  # objects per kind

    @property
    def synced(self) -> bool:
        return self.listed.issuperset(self.kinds)

    def apply(self, kind: str, delta: Delta[Obj]) -> None:
        key = (kind, *delta.key)
        if delta.type == "DELETED":
            if self.objects.pop(key, None) is not None:
                self._counts[kind] -= 1
        else:
            if self.objects.get(key) is None:
                self._counts[kind] = self._counts.get(kind, 0) + 1
            self.objects[key] = delta.obj
        self.revision = max(self.revision, delta.revision)

    def mark_listed(self, kind: str, revision: int) -> None:
        """``kind`` was (re)listed at ``revision``; its deltas have been applied."""
        self.listed.add(kind)
        self.revision = max(self.revision, revision)

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((kind, namespace, name))

    def count(self, kind: str) -> int:
        """How many objects of ``kind`` the state holds (without walking all of them)."""
        return self._counts.get(kind, 0)

    def of_kind(self, kind: str) -> Iterator[Obj]:
        return (o for (k, _, _), o in self.objects.items() if k == kind)
