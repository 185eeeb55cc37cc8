"""Reading one stored object for a request, and store errors as Kubernetes Status errors."""

from __future__ import annotations

from typing import Any

from lab.apiserver.errors import ApiError, already_exists, conflict, not_found
from lab.apiserver.routing import Target
from lab.store import AlreadyExists, Conflict, NotFound, Store, StoreError


def key(target: Target) -> tuple[str, str, str]:
    return target.resource.kind, target.namespace or "", target.name or ""


def store_errors(target: Target, err: StoreError) -> ApiError:
    r = target.resource
    if isinstance(err, NotFound):
        return not_found(r.plural, err.name, r.group)
    if isinstance(err, AlreadyExists):
        return already_exists(r.plural, err.name, r.group)
    if isinstance(err, Conflict):
        return conflict(r.plural, err.name, r.group)
    return ApiError(422, f'{r.kind} "{target.name or ""}": {err}')


def get(store: Store, target: Target) -> dict[str, Any]:
    obj = store.get(*key(target))
    if obj is None:
        raise not_found(target.resource.plural, target.name or "", target.resource.group)
    return obj
