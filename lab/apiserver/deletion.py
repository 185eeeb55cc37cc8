"""Deletion: finalizers, what goes with a deleted object, and orphaning.

- An object with ``metadata.finalizers`` is not removed by DELETE: it gets a
  ``deletionTimestamp`` and goes once an update leaves its finalizers empty (no finalizer may
  be added meanwhile), as on a cluster.
- A Namespace takes its objects along at once (the namespace controller's job on a cluster),
  so nothing of it outlives it; a CRD takes its custom resources.
- ``propagationPolicy: Orphan`` strips the deleted object from its dependents'
  ``ownerReferences`` first; Background and Foreground both leave dependents to the lab's
  controllers (the Deployment controller deletes Pods whose owner is gone).
"""

from __future__ import annotations

from typing import Any

from lab.apiserver import crds
from lab.apiserver.errors import bad_request, conflict, invalid, not_found
from lab.apiserver.routing import Target
from lab.apiserver.stored import get, key, store_errors
from lab.store import Store, StoreError
from lab.store.objects import now_rfc3339


def initial_status(obj: dict[str, Any]) -> dict[str, Any] | None:
    """What a cluster's controllers would set at once: an Active Namespace, an Established CRD
    (so ``kubectl wait --for condition=established`` works)."""
    if obj["kind"] == "Namespace":
        return {"phase": "Active"}
    if obj["kind"] == crds.CRD_KIND:
        now = obj["metadata"]["creationTimestamp"]
        conditions = [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ]
        names = (obj.get("spec") or {}).get("names") or {}
        return {"conditions": conditions, "acceptedNames": names, "storedVersions": []}
    return None


def _contents(store: Store, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What goes with ``obj`` when it is deleted: a Namespace's objects (the namespace
    controller's job on a cluster, done at once so nothing outlives the namespace), a CRD's
    custom resources."""
    if obj["kind"] == "Namespace":
        name = obj["metadata"]["name"]
        return [(o["kind"], name, o["metadata"]["name"]) for o in store.list(namespace=name)[0]]
    if obj["kind"] == crds.CRD_KIND:
        res = crds.resource_of(obj)
        if res is not None and res in crds.registry(store).resources and res.custom:
            return [_key_of(o) for o in store.list(res.kind)[0]]
    return []


def _key_of(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def delete(
    store: Store, target: Target, options: dict[str, Any], *, dry_run: bool = False
) -> dict[str, Any]:
    """DELETE one object, with what goes with it (see ``_contents``)."""
    existing = get(store, target)
    preconditions = options.get("preconditions") or {}
    if not isinstance(preconditions, dict):
        raise bad_request("preconditions must be an object")
    expected = preconditions.get("resourceVersion")
    if expected is not None and str(expected) != existing["metadata"].get("resourceVersion"):
        raise conflict(target.resource.plural, target.name or "", target.resource.group)
    uid = preconditions.get("uid")
    if uid is not None and uid != existing["metadata"].get("uid"):
        raise conflict(target.resource.plural, target.name or "", target.resource.group)
    if dry_run:
        return existing
    kind, ns, name = key(target)
    if _orphaning(options):
        _orphan_dependents(store, existing)
    if existing["metadata"].get("finalizers") and kind != "Namespace":
        return _mark_deleting(store, target, existing)
    try:
        contents = _contents(store, existing)
        if contents:
            deleted = store.delete_many([*contents, (kind, ns, name)])
            return next(o for o in deleted if o["kind"] == kind)
        gone = store.delete(kind, ns, name, expect_resource_version=expected)
    except StoreError as err:
        raise store_errors(target, err) from None
    if gone is None:
        raise not_found(target.resource.plural, name, target.resource.group)
    return gone


def _orphaning(options: dict[str, Any]) -> bool:
    policy = options.get("propagationPolicy")
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise bad_request(f"propagationPolicy {policy!r}: must be Orphan, Background or Foreground")
    return policy == "Orphan" or options.get("orphanDependents") is True


def _orphan_dependents(store: Store, owner: dict[str, Any]) -> None:
    uid = owner["metadata"].get("uid")
    namespace = owner["metadata"].get("namespace")
    for obj in store.list(namespace=namespace)[0]:
        refs = obj["metadata"].get("ownerReferences") or []
        kept = [r for r in refs if r.get("uid") != uid]
        if len(kept) != len(refs):
            meta = {k: v for k, v in obj["metadata"].items() if k != "ownerReferences"}
            if kept:
                meta["ownerReferences"] = kept
            try:
                store.update({**obj, "metadata": meta})
            except StoreError:
                continue  # changed or gone meanwhile: best effort, as the garbage collector


def _mark_deleting(store: Store, target: Target, existing: dict[str, Any]) -> dict[str, Any]:
    """Finalizers hold the object: it is marked, and goes when they are all removed."""
    meta = existing["metadata"]
    if meta.get("deletionTimestamp"):
        return existing
    marked = {
        **existing,
        "metadata": {**meta, "deletionTimestamp": now_rfc3339(), "deletionGracePeriodSeconds": 0},
    }
    try:
        return store.update(marked, expect_resource_version=meta["resourceVersion"])
    except StoreError as err:
        raise store_errors(target, err) from None


def keep_deletion_state(existing: dict[str, Any], incoming: dict[str, Any]) -> None:
    """An update keeps the server's deletion marks, and may not add finalizers to an object
    being deleted (clients cannot set ``deletionTimestamp`` either)."""
    old, new = existing["metadata"], incoming["metadata"]
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if field in old:
            new[field] = old[field]
        else:
            new.pop(field, None)
    if old.get("deletionTimestamp"):
        added = set(new.get("finalizers") or []) - set(old.get("finalizers") or [])
        if added:
            raise invalid(
                incoming["kind"],
                new["name"],
                [
                    (
                        "metadata.finalizers",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    )
                ],
            )


def finish_if_released(store: Store, stored: dict[str, Any]) -> dict[str, Any]:
    """Remove an object being deleted once an update has left it without finalizers."""
    meta = stored["metadata"]
    if meta.get("deletionTimestamp") and not meta.get("finalizers"):
        store.delete(stored["kind"], meta.get("namespace") or "", meta["name"])
    return stored
