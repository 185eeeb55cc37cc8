"""Field ownership (``metadata.managedFields``), as server-side apply needs it.

Every write records which leaf fields its field manager set: an Update (create, PUT, PATCH)
takes the fields it changed from whoever held them; an Apply owns exactly the fields of its
configuration. An Apply that would change a field another manager holds is a conflict (409)
unless forced, and the fields a manager applied before and no longer applies are removed from
the object when nobody else holds them, with the fields that enclose them once nothing anyone
holds is left inside (the server's defaults in them go too, as structured-merge-diff prunes).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from lab.apiserver import fieldsets
from lab.apiserver.errors import ApiError
from lab.apiserver.fieldsets import Path
from lab.store.objects import now_rfc3339

Managers = dict[tuple[str, str], set[Path]]  # (manager, operation) -> fields


def read(obj: Mapping[str, Any]) -> Managers:
    out: Managers = {}
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if not isinstance(entry, Mapping) or entry.get("subresource"):
            continue
        fields = entry.get("fieldsV1")
        key = (str(entry.get("manager", "")), str(entry.get("operation", "Update")))
        out.setdefault(key, set()).update(
            fieldsets.from_fields_v1(fields) if isinstance(fields, Mapping) else set()
        )
    return out


def entries(
    managers: Managers, obj: Mapping[str, Any], previous: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """managedFields for ``obj``: only fields it still has, only managers holding some. An
    entry that ``previous`` already had unchanged keeps its time, so that a write changing
    nothing (a repeated apply) leaves the object, and its resourceVersion, as they were."""
    now = now_rfc3339()
    before = {
        (e.get("manager"), e.get("operation"), _canonical(e.get("fieldsV1"))): e.get("time")
        for e in (previous or {}).get("metadata", {}).get("managedFields") or []
        if isinstance(e, Mapping)
    }
    out = []
    for (manager, operation), paths in sorted(managers.items()):
        held = {p for p in paths if fieldsets.get(obj, p) is not fieldsets._MISSING}
        if held:
            fields = fieldsets.to_fields_v1(held)
            out.append(
                {
                    "manager": manager,
                    "operation": operation,
                    "apiVersion": obj.get("apiVersion", ""),
                    "time": before.get((manager, operation, _canonical(fields))) or now,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                }
            )
    return out


def _canonical(fields: Any) -> str:
    return json.dumps(fields, sort_keys=True)


def record_update(
    kind: str, old: Mapping[str, Any] | None, new: dict[str, Any], manager: str
) -> None:
    """Set ``new``'s managedFields after an Update by ``manager`` (in place)."""
    managers = read(old) if old is not None else {}
    new_paths = fieldsets.leaf_paths(kind, new)
    if old is None:
        changed = new_paths
    else:
        old_paths = fieldsets.leaf_paths(kind, old)
        changed = {
            p for p in new_paths | old_paths if fieldsets.get(old, p) != fieldsets.get(new, p)
        }
    for key in list(managers):
        managers[key] -= changed
    managers.setdefault((manager, "Update"), set()).update(changed & new_paths)
    new["metadata"]["managedFields"] = entries(managers, new)


def apply(
    kind: str,
    live: Mapping[str, Any],
    merged: dict[str, Any],
    config: Mapping[str, Any],
    manager: str,
    force: bool,
) -> dict[str, Any]:
    """``merged`` (live with ``config`` merged in) with ownership applied: conflicts raise 409
    unless ``force``; fields ``manager`` no longer applies are removed; managedFields set."""
    managers = read(live)
    applied = fieldsets.leaf_paths(kind, config)
    conflicts: dict[Path, list[str]] = {}
    for (other, operation), paths in managers.items():
        if other == manager and operation == "Apply":
            continue
        for path in applied & paths:
            if fieldsets.get(live, path) != fieldsets.get(config, path):
                conflicts.setdefault(path, []).append(other)
    if conflicts and not force:
        raise _conflict(conflicts, str(live.get("apiVersion", "")))
    for key in list(managers):
        if key != (manager, "Apply"):
            managers[key] -= set(conflicts) if force else set()
            if key[0] == manager:  # this manager's own Updates become part of its apply
                managers[key] -= applied
    previous = managers.get((manager, "Apply"), set())
    held_by_others = set().union(*(p for k, p in managers.items() if k != (manager, "Apply")))
    result = copy.deepcopy(merged)
    keep = applied | held_by_others
    for path in sorted(previous - applied - held_by_others, key=len, reverse=True):
        if not _holds_any(path, keep):  # `labels: {}` applied before, `labels: {a: b}` now
            fieldsets.remove(result, path)
    # A keyed list item applied before and not now goes as a whole, with the fields the
    # server defaulted in it (a Service port's protocol): Kubernetes owns the item itself.
    for item in sorted(_items(previous - applied), key=len, reverse=True):
        if not _holds_any(item, keep):
            fieldsets.remove(result, item)
    # So does a field on the way to one applied before and not now, once nobody holds
    # anything in it: dropping `spec.tls` must not leave the server's defaults inside it
    # (`clientCertificateRef.kind: Secret`) as a half object that fails validation.
    # structured-merge-diff's prune makes such named fields members for the same reason.
    for field in sorted(_enclosing(previous - applied), key=len, reverse=True):
        if not _holds_any(field, keep):
            fieldsets.remove(result, field)
    managers[(manager, "Apply")] = applied
    result["metadata"]["managedFields"] = entries(managers, result, live)
    return result


def _holds_any(prefix: Path, paths: set[Path]) -> bool:
    """Whether a field in ``paths`` lies at or inside ``prefix``."""
    return any(p[: len(prefix)] == prefix for p in paths)


def _items(paths: set[Path]) -> set[Path]:
    """The keyed list items (paths ending in a ``k:`` token) that ``paths`` lie in."""
    return {p[: i + 1] for p in paths for i, token in enumerate(p) if token.startswith("k:")}


def _enclosing(paths: set[Path]) -> set[Path]:
    """The fields that ``paths`` lie in, below the top level (``spec`` and ``metadata``
    themselves stay: they hold what nobody applies, the name among it)."""
    return {p[: i + 1] for p in paths for i in range(1, len(p) - 1) if p[i].startswith("f:")}


def _conflict(conflicts: dict[Path, list[str]], api_version: str) -> ApiError:
    lines = [
        f'conflict with "{owner}" using {api_version}: {fieldsets.dotted(path)}'
        for path, owners in sorted(conflicts.items())
        for owner in owners
    ]
    count = len(lines)
    message = f"Apply failed with {count} conflict{'s' if count != 1 else ''}: " + "\n".join(lines)
    causes = [
        {"reason": "FieldManagerConflict", "message": line, "field": fieldsets.dotted(path)}
        for (path, _), line in zip(
            [(p, o) for p, owners in sorted(conflicts.items()) for o in owners], lines, strict=True
        )
    ]
    return ApiError(409, message, details={"causes": causes})
