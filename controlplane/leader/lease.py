"""The Lease through the Kubernetes API: get, create, and replace at the resourceVersion read
(optimistic concurrency: a 409 means another candidate wrote first, and it won)."""

from __future__ import annotations

import copy
from typing import Any, Protocol

from lightkube import ApiError, Client

from agent.kube.resources import generic_resource
from controlplane.leader.election import LeaseRecord

Obj = dict[str, Any]
LEASE = generic_resource("coordination.k8s.io/v1", "leases", "Lease", namespaced=True)


class LostRace(RuntimeError):
    """The Lease changed since we read it (409 Conflict or AlreadyExists)."""


class Leases(Protocol):
    """The three calls an election makes; ``KubeLeases`` on a cluster."""

    def get(self, namespace: str, name: str) -> Obj | None: ...

    def create(self, obj: Obj) -> Obj: ...

    def replace(self, obj: Obj) -> Obj: ...


def lease_object(namespace: str, name: str, record: LeaseRecord, seen: Obj | None) -> Obj:
    """The Lease to write: ``record`` as its spec, at ``seen``'s resourceVersion (None: a
    create, which fails when another candidate created it first)."""
    metadata: Obj = {"name": name, "namespace": namespace}
    if seen is not None:
        metadata = {**copy.deepcopy(seen["metadata"]), **metadata}
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": record.to_spec(),
    }


class KubeLeases:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, namespace: str, name: str) -> Obj | None:
        try:
            return dict(self.client.get(LEASE, name, namespace=namespace))
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise

    def create(self, obj: Obj) -> Obj:
        return self._write(obj, replace=False)

    def replace(self, obj: Obj) -> Obj:
        return self._write(obj, replace=True)

    def _write(self, obj: Obj, replace: bool) -> Obj:
        res = LEASE(copy.deepcopy(obj))
        try:
            out = self.client.replace(res) if replace else self.client.create(res)
        except ApiError as err:
            if err.status.code == 409:
                raise LostRace(err.status.message or "conflict") from None
            raise
        return dict(out)
