"""list: selectors, then pagination with ``limit`` and ``continue``.

A continue token carries the list's revision and the last key returned. Later pages read the
store as it is now (not a snapshot at that revision, which SQLite cannot give us) but keep the
first page's resourceVersion; a token older than the compacted event history is refused with
410 Expired, as Kubernetes refuses one older than etcd's compaction.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import msgspec

from lab.apiserver import events_view, storeview
from lab.apiserver.errors import ApiError, bad_request, expired
from lab.apiserver.routing import Target
from lab.apiserver.selectors import Predicate, parse_field_selector, parse_label_selector
from lab.store import Expired, Store


def selector(target: Target, query: Mapping[str, str]) -> Predicate:
    labels = parse_label_selector(query.get("labelSelector", ""))
    fields = parse_field_selector(query.get("fieldSelector", ""), target.resource.kind)
    return lambda o: labels(o) and fields(o)


def encode_continue(revision: int, namespace: str, name: str) -> str:
    raw = json.dumps({"rv": revision, "ns": namespace, "name": name}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(raw["rv"]), str(raw["ns"]), str(raw["name"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise bad_request("invalid continue token; list again without one") from None


def _limit(query: Mapping[str, str]) -> int | None:
    text = query.get("limit")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"limit must be an integer, got {text!r}") from None
    return value if value > 0 else None


def _start(store: Store, query: Mapping[str, str]) -> tuple[tuple[str, str] | None, int | None]:
    """Where a page starts and the revision of its list's first page (a continue token)."""
    token = query.get("continue")
    if not token:
        return None, None
    first_revision, ns, name = decode_continue(token)
    try:
        store.events_since(first_revision, kinds=(), limit=1)
    except Expired:
        raise expired(
            "The provided continue parameter is too old to display a consistent list "
            "result. You can start a new list without the continue parameter."
        ) from None
    return (ns, name), first_revision


def _meta(found: storeview.Page, first_revision: int | None) -> dict[str, Any]:
    revision = found.revision if first_revision is None else first_revision
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if found.more and found.last is not None:
        meta["continue"] = encode_continue(revision, *found.last)
        if found.remaining is not None:
            meta["remainingItemCount"] = found.remaining
    return meta


def list_objects(
    store: Store, target: Target, query: Mapping[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(items, list metadata) for a list request."""
    has_selector = bool(query.get("labelSelector") or query.get("fieldSelector"))
    match = selector(target, query) if has_selector else None
    start, first_revision = _start(store, query)
    found = storeview.page(
        store, target.resource.kind, target.namespace, start, match, _limit(query)
    )
    return found.items, _meta(found, first_revision)


class _Head(msgspec.Struct):
    apiVersion: str = ""  # noqa: N815 - the JSON field's name


_read_head = msgspec.json.Decoder(_Head).decode


def list_bytes(store: Store, target: Target, query: Mapping[str, str]) -> bytes | None:
    """The list response's JSON, spliced from the objects' stored texts: no decode and
    re-encode of every object (a list of 10,000 EndpointSlices cost the server ~0.5 s CPU
    that way). None when the list needs its objects decoded: a selector, or an events view.
    An object stored under another version of its kind is decoded and served as asked."""
    if query.get("labelSelector") or query.get("fieldSelector"):
        return None
    if events_view.is_view(target.resource):
        return None
    start, first_revision = _start(store, query)
    found = storeview.page(
        store, target.resource.kind, target.namespace, start, None, _limit(query), raw=True
    )
    assert found.bodies is not None
    wanted = target.api_version
    items = [
        body
        if _read_head(body).apiVersion == wanted
        else _dumps(served(target, json.loads(body)))
        for body in found.bodies
    ]
    head = _dumps({"kind": f"{target.resource.kind}List", "apiVersion": wanted,
                   "metadata": _meta(found, first_revision)})
    return (head[:-1] + ',"items":[' + ",".join(items) + "]}").encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def list_body(target: Target, items: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": f"{target.resource.kind}List",
        "apiVersion": target.api_version,
        "metadata": meta,
        "items": [served(target, o) for o in items],
    }


def served(target: Target, obj: dict[str, Any]) -> dict[str, Any]:
    """The object in the version the request asked for (versions differ only in name here,
    but for Events asked for as events.k8s.io, converted from core/v1)."""
    if events_view.is_view(target.resource):
        return events_view.to_view(obj, target.api_version)
    if obj.get("apiVersion") == target.api_version:
        return obj
    return {**obj, "apiVersion": target.api_version}


def check_list_request(query: Mapping[str, str]) -> None:
    if query.get("continue") and query.get("resourceVersion") not in (None, ""):
        raise ApiError(400, "specifying resource version is not allowed when using continue")
