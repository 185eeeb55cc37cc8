"""create, update, patch and delete: admission, then one store write.

Status is a subresource for the kinds that have one: writes to the object keep the stored
status, writes to ``/status`` change nothing but status. ``dry_run`` answers what would be
stored and writes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from lab.apiserver import deletion, fieldsets, ownership
from lab.apiserver import patch as patches
from lab.apiserver.admission import admitted, check_namespace, shape
from lab.apiserver.auth import with_token
from lab.apiserver.errors import ApiError, already_exists, bad_request, conflict
from lab.apiserver.routing import Target
from lab.apiserver.stored import get, key, store_errors
from lab.store import Store, StoreError

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)
Admit = Callable[[dict[str, Any]], None]


def _has_status(target: Target) -> bool:
    return "status" in target.resource.subresources


def create(
    store: Store,
    target: Target,
    body: Any,
    *,
    dry_run: bool = False,
    manager: str | None = None,
    applied: Any = None,
    registrar: bool = False,
    admit: Admit | None = None,
) -> dict[str, Any]:
    """POST. ``manager`` owns the new object's fields (an Apply owns those of ``applied``);
    ``registrar``: the caller is the node registrar (may create Nodes); ``admit`` checks the
    object as it would be stored, for the caller (raises to refuse it)."""
    obj = shape(target, body, creating=True)
    if obj["metadata"].get("resourceVersion"):
        raise bad_request("resourceVersion should not be set on objects to be created")
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        obj["metadata"].pop(field, None)  # set by the server on DELETE only
    if _has_status(target):
        obj.pop("status", None)
    if obj["kind"] == "Secret":
        obj = with_token(store, obj)
    check_namespace(store, target, obj)
    obj = admitted(store, target, obj, registrar=registrar)
    if admit is not None:
        admit(obj)
    if manager and applied is not None:
        paths = fieldsets.leaf_paths(obj["kind"], applied)
        obj["metadata"]["managedFields"] = ownership.entries({(manager, "Apply"): paths}, obj)
    elif manager:
        ownership.record_update(obj["kind"], None, obj, manager)
    if dry_run:
        if store.get(obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]):
            raise already_exists(
                target.resource.plural, obj["metadata"]["name"], target.resource.group
            )
        return obj
    try:
        created = store.create(obj)
        status = deletion.initial_status(created)
        if status is not None:
            created = store.update_status(created["kind"], "", obj["metadata"]["name"], status)
        return created
    except StoreError as err:
        raise store_errors(target, err) from None


def update(
    store: Store,
    target: Target,
    body: Any,
    *,
    dry_run: bool = False,
    manager: str | None = None,
    admit: Admit | None = None,
) -> dict[str, Any]:
    """PUT: the body replaces the object; its resourceVersion, if any, must be current.
    ``manager`` takes the fields it changed (None: the body's managedFields stand)."""
    if target.subresource == "status":
        return _update_status(store, target, body, dry_run=dry_run)
    obj = shape(target, body, creating=False)
    expected = obj["metadata"].get("resourceVersion")
    if _has_status(target):
        obj.pop("status", None)
    existing = get(store, target)
    if expected is not None and str(expected) != existing["metadata"].get("resourceVersion"):
        raise conflict(target.resource.plural, target.name or "", target.resource.group)
    obj = admitted(store, target, obj)
    if admit is not None:
        admit(obj)
    deletion.keep_deletion_state(existing, obj)
    if manager:
        ownership.record_update(obj["kind"], existing, obj, manager)
    if dry_run:
        return {**obj, "status": existing.get("status")} if "status" in existing else obj
    try:
        stored = store.update(
            obj, expect_resource_version=expected or existing["metadata"]["resourceVersion"]
        )
        return deletion.finish_if_released(store, stored)
    except StoreError as err:
        raise store_errors(target, err) from None


def _update_status(store: Store, target: Target, body: Any, *, dry_run: bool) -> dict[str, Any]:
    obj = shape(target, body, creating=False)
    expected = obj["metadata"].get("resourceVersion")
    existing = get(store, target)
    status = obj.get("status")
    if status is None:
        status = {}
    if not isinstance(status, dict):
        raise bad_request("status must be an object")
    if dry_run:
        return {**existing, "status": status}
    try:
        kind, ns, name = key(target)
        return store.update_status(kind, ns, name, status, expect_resource_version=expected)
    except StoreError as err:
        raise store_errors(target, err) from None


def patch(
    store: Store,
    target: Target,
    body: Any,
    content_type: str,
    *,
    dry_run: bool = False,
    manager: str | None = None,
    force: bool = False,
    admit: Admit | None = None,
) -> dict[str, Any]:
    """PATCH: apply the patch to the stored object and write it back (retried on a conflict
    with a concurrent writer unless the patch itself names a resourceVersion)."""
    res = target.resource
    if content_type == APPLY:
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml: fieldManager is required")
        return _server_side_apply(
            store, target, body, dry_run=dry_run, manager=manager, force=force, admit=admit
        )
    if content_type == STRATEGIC and not res.builtin:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE}, {APPLY}",
        )
    for _attempt in range(5):
        existing = get(store, target)
        patched = patched_object(res.kind, existing, body, content_type)
        if patched.get("kind") != existing.get("kind"):
            raise bad_request("a patch cannot change kind")
        meta = patched.get("metadata")
        if not isinstance(meta, dict) or meta.get("name") != existing["metadata"]["name"]:
            raise bad_request("a patch cannot change metadata.name")
        patched["apiVersion"] = target.api_version
        pinned = _pins_version(body, content_type)
        if not pinned:
            patched["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        try:
            return update(store, target, patched, dry_run=dry_run, manager=manager, admit=admit)
        except ApiError as err:
            if err.code != 409 or pinned or err.reason != "Conflict":
                raise
    raise conflict(res.plural, target.name or "", res.group)


def patched_object(
    kind: str, existing: dict[str, Any], body: Any, content_type: str
) -> dict[str, Any]:
    try:
        if content_type == MERGE:
            if not isinstance(body, dict):
                raise patches.PatchError("a merge patch must be a JSON object")
            result = patches.merge_patch(existing, body)
        elif content_type == JSON_PATCH:
            result = patches.json_patch(existing, body)
        elif content_type == STRATEGIC:
            result = patches.strategic_merge_patch(kind, existing, body)
        else:
            raise ApiError(
                415,
                f"unsupported patch type {content_type!r}; accepted: {', '.join(PATCH_TYPES[:3])}",
            )
    except patches.PatchError as err:
        raise bad_request(str(err)) from None
    except patches.PatchConflict as err:
        raise ApiError(422, str(err)) from None
    if not isinstance(result, dict):
        raise ApiError(422, "the patched document is not an object")
    return copy.deepcopy(result)


def _server_side_apply(
    store: Store,
    target: Target,
    body: Any,
    *,
    dry_run: bool,
    manager: str,
    force: bool,
    admit: Admit | None = None,
) -> dict[str, Any]:
    """Server-side apply: create the object, or merge the configuration in (strategic merge
    for built-in kinds, JSON merge otherwise) with field ownership (``ownership.py``)."""
    config = shape(target, body, creating=True)
    config["metadata"] = {k: v for k, v in config["metadata"].items() if k != "resourceVersion"}
    config.pop("status", None)
    res = target.resource
    if store.get(res.kind, target.namespace or "", config["metadata"]["name"]) is None:
        return create(
            store, target, config, dry_run=dry_run, manager=manager, applied=config, admit=admit
        )
    merge = STRATEGIC if res.builtin else MERGE
    for _attempt in range(5):
        live = get(store, target)
        merged = patched_object(res.kind, live, config, merge)
        owned = ownership.apply(res.kind, live, merged, config, manager, force)
        owned["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        try:
            return update(store, target, owned, dry_run=dry_run, admit=admit)
        except ApiError as err:
            if err.code != 409 or err.reason != "Conflict":
                raise
    raise conflict(res.plural, target.name or "", res.group)


def _pins_version(body: Any, content_type: str) -> bool:
    if content_type == JSON_PATCH:
        return isinstance(body, list) and any(
            isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body
        )
    meta = body.get("metadata") if isinstance(body, dict) else None
    return isinstance(meta, dict) and meta.get("resourceVersion") is not None
