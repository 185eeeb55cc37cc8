"""Pure helpers for the server-set fields of stored objects (no I/O).

The store owns four metadata fields, as the Kubernetes API server does: ``uid`` and
``creationTimestamp`` (set on create, kept forever), ``resourceVersion`` (the revision of the
object's latest write) and ``generation`` (1 on create, +1 whenever the desired state changes).
"Desired state" is every top-level field except ``apiVersion``, ``kind``, ``metadata`` and
``status``: edits to labels, annotations or status never bump the generation.

``status`` is a subresource, as in Kubernetes: a create starts without one and an update keeps
the stored one, whatever the incoming object carries. Only :func:`with_status` (the store's
``update_status``, the path controllers, the kubelet and node agents use) writes it, so a user's
``apply`` cannot plant datapath-driving state such as a Gateway's ``status.addresses``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lab.store.errors import InvalidObject, ObjectTooLarge, describe

Key = tuple[str, str, str]
"""(kind, namespace, name); cluster-scoped objects use namespace ""."""

MAX_OBJECT_BYTES = 1536 * 1024
"""Kubernetes' limit (etcd's 1.5 MiB request cap), on the object as stored (compact JSON)."""

SERVER_FIELDS = ("uid", "creationTimestamp", "resourceVersion", "generation")
_NOT_SPEC = frozenset({"apiVersion", "kind", "metadata", "status"})


def json_copy(value: Any) -> Any:
    """A deep copy made through JSON, so whatever is stored reads back identical."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as err:
        raise InvalidObject(f"object is not JSON-serialisable: {err}") from err


def normalise(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Return a deep, JSON-clean copy of ``obj`` after checking it has a kind and a name."""
    copy = json_copy(obj)
    if not isinstance(copy, dict):
        raise InvalidObject(f"object must be a mapping, got {type(obj).__name__}")
    kind = copy.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InvalidObject("object has no kind")
    meta = copy.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise InvalidObject(f"{kind} has no metadata.name")
    namespace = meta.get("namespace", "")
    if not isinstance(namespace, str):
        raise InvalidObject(f"{kind} {meta['name']}: metadata.namespace must be a string")
    return copy


def check_size(key: Key, body: str) -> None:
    """Refuse an object whose stored form is over :data:`MAX_OBJECT_BYTES`."""
    size = len(body.encode())
    if size > MAX_OBJECT_BYTES:
        raise ObjectTooLarge(describe(*key), size, MAX_OBJECT_BYTES)


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace") or "", meta["name"]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource_version(obj: Mapping[str, Any]) -> str | None:
    rv = obj.get("metadata", {}).get("resourceVersion")
    return None if rv is None else str(rv)


def without_server_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``obj`` whose metadata lacks the fields the store sets."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_FIELDS}
    return {**obj, "metadata": meta}


def desired_state(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object whose changes bump ``metadata.generation``."""
    return {k: v for k, v in obj.items() if k not in _NOT_SPEC}


def prepare_create(obj: dict[str, Any], *, uid: str, now: str) -> dict[str, Any]:
    """Set the create-time server fields on ``obj`` (in place; ``obj`` is a private copy).

    Any client-supplied uid, timestamp, generation, resourceVersion or status is ignored.
    """
    obj.pop("status", None)
    meta = obj["metadata"]
    meta.pop("resourceVersion", None)
    meta["uid"] = uid
    meta["creationTimestamp"] = now
    meta["generation"] = 1
    return obj


def merge_update(
    existing: Mapping[str, Any], incoming: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Merge an incoming full object over the stored one; return (merged, changed).

    Server fields and ``status`` come from ``existing`` (the generation goes up by one if the
    desired state differs); an incoming ``status`` is ignored (status subresource semantics).
    ``changed`` is False when nothing but server fields differ, in which case the caller must
    not write.
    """
    merged = {k: v for k, v in incoming.items() if k != "status"}
    if "status" in existing:
        merged["status"] = existing["status"]
    old_meta = existing["metadata"]
    meta = {k: v for k, v in incoming["metadata"].items() if k not in SERVER_FIELDS}
    for field in SERVER_FIELDS:
        if field in old_meta:
            meta[field] = old_meta[field]
    merged["metadata"] = meta
    if without_server_fields(merged) == without_server_fields(existing):
        return dict(existing), False
    if desired_state(merged) != desired_state(existing):
        meta["generation"] = int(old_meta.get("generation", 0)) + 1
    return merged, True


def with_status(
    existing: Mapping[str, Any], status: Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Replace only ``status``; return (object, changed). Never touches the generation."""
    new_status = json_copy(status)
    if existing.get("status") == new_status:
        return dict(existing), False
    return {**existing, "status": new_status}, True


def matches_labels(obj: Mapping[str, Any], selector: Mapping[str, str] | None) -> bool:
    """Equality-based label selection: every selector pair must be among the object's labels."""
    if not selector:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())
