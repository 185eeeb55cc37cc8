"""The three patch formats kubectl sends (pure functions over JSON values).

- JSON merge patch (RFC 7386): maps merge, ``null`` deletes, anything else replaces.
- JSON patch (RFC 6902): add, remove, replace, move, copy, test over JSON pointers (RFC 6901).
- Strategic merge patch (Kubernetes built-in kinds): as merge patch, except that the lists the
  API marks ``patchStrategy: merge`` merge by their ``patchMergeKey`` (or as sets for lists of
  scalars), plus the directives ``$patch`` (replace, delete), ``$retainKeys``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` that client-side
  ``kubectl apply`` sends.

Errors raise :class:`PatchError` (malformed patch: 400) or :class:`PatchConflict` (a patch that
does not apply to the object, such as a failed ``test``: 422).
"""

from __future__ import annotations

import copy
from typing import Any

from lab.apiserver.smp_meta import merge_key

JSON = Any


class PatchError(ValueError):
    """The patch document itself is malformed."""


class PatchConflict(ValueError):
    """The patch is well-formed but cannot apply to this object."""


# -- JSON merge patch ------------------------------------------------------------------------


def merge_patch(target: JSON, patch: JSON) -> JSON:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- JSON patch ------------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer {path!r}: must be empty or start with '/'")
    if not path:
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool, path: str) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchConflict(f"path {path!r}: {token!r} is not an array index")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchConflict(f"path {path!r}: index {index} is out of range")
    return index


def _parent(doc: JSON, tokens: list[str], path: str) -> JSON:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchConflict(f"path {path!r} does not exist (missing {token!r})")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False, path=path)]
        else:
            raise PatchConflict(f"path {path!r} does not exist")
    return node


def _get(doc: JSON, path: str) -> JSON:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"path {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False, path=path)]
    raise PatchConflict(f"path {path!r} does not exist")


def _add(doc: JSON, path: str, value: JSON) -> JSON:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True, path=path), value)
    else:
        raise PatchConflict(f"path {path!r}: parent is not an object or array")
    return doc


def _remove(doc: JSON, path: str) -> tuple[JSON, JSON]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchConflict("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchConflict(f"path {path!r} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, for_add=False, path=path))
    raise PatchConflict(f"path {path!r} does not exist")


def json_patch(target: JSON, operations: JSON) -> JSON:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(target)
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise PatchError(f"operation {i}: must be an object with an 'op'")
        name, path = op["op"], op.get("path")
        if path is None:
            raise PatchError(f"operation {i} ({name}): missing 'path'")
        if name in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {i} ({name}): missing 'value'")
        value = copy.deepcopy(op.get("value"))
        if name == "add":
            doc = _add(doc, path, value)
        elif name == "remove":
            doc, _ = _remove(doc, path)
        elif name == "replace":
            _get(doc, path)
            doc, _ = _remove(doc, path) if _pointer(path) else (doc, None)
            doc = _add(doc, path, value)
        elif name in ("move", "copy"):
            source = op.get("from")
            if source is None:
                raise PatchError(f"operation {i} ({name}): missing 'from'")
            if name == "move":
                if path != source and path.startswith(source + "/"):
                    raise PatchConflict(f"operation {i}: cannot move {source!r} into itself")
                doc, moved = _remove(doc, source)
            else:
                moved = copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, moved)
        elif name == "test":
            if _get(doc, path) != value:
                raise PatchConflict(f"test operation failed: {path!r} is not {value!r}")
        else:
            raise PatchError(f"operation {i}: unknown op {name!r}")
    return doc


# -- strategic merge patch -------------------------------------------------------------------

_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge_patch(kind: str, target: JSON, patch: JSON) -> JSON:
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    result = _merge_map(kind, dict(target), patch, ())
    if result is None:
        raise PatchConflict("the patch deletes the whole object")
    return result


def _merge_map(kind: str, original: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]):
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "delete":
        return None
    if directive == "replace":
        return _merge_map(kind, {}, patch, path)
    if directive is not None:
        raise PatchError(f"{'.'.join(path) or 'object'}: unknown $patch directive {directive!r}")
    retain = patch.pop("$retainKeys", None)
    if retain is not None and not isinstance(retain, list):
        raise PatchError(f"{'.'.join(path)}: $retainKeys must be a list")
    result = copy.deepcopy(original)
    orders: dict[str, list[Any]] = {}
    deletes: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key.startswith(_ORDER):
            orders[key[len(_ORDER) :]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            deletes[key[len(_DELETE_PRIMITIVE) :]] = value
            continue
        here = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            merged = _merge_map(kind, base if isinstance(base, dict) else {}, value, here)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            strategy = merge_key(kind, here)
            base = result.get(key)
            if strategy is None or not isinstance(base, list):
                merged_list = _merge_list(kind, [], value, here, strategy)
            else:
                merged_list = _merge_list(kind, base, value, here, strategy)
            result[key] = merged_list
        else:
            result[key] = value
    for field, values in deletes.items():
        if not isinstance(values, list):
            raise PatchError(f"{_DELETE_PRIMITIVE}{field} must be a list")
        result[field] = [v for v in result.get(field, []) if v not in values]
    for field, order in orders.items():
        if isinstance(result.get(field), list) and isinstance(order, list):
            result[field] = _ordered(result[field], order, merge_key(kind, (*path, field)))
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(
    kind: str, original: list[Any], patch: list[Any], path: tuple[str, ...], key: str | None
) -> list[Any]:
    if key is None or any(
        isinstance(item, dict) and item.get("$patch") == "replace" for item in patch
    ):
        # Atomic list (or an explicit replace): the patch's list wins, directives removed.
        items = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
        return [_merge_map(kind, {}, i, path) if isinstance(i, dict) else i for i in items]
    if key == "":  # a set of scalars
        return [*original, *(v for v in patch if v not in original)]
    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"{'.'.join(path)}: expected objects merged by {key!r}")
        if key not in item:
            raise PatchError(f"{'.'.join(path)}: an item has no merge key {key!r}")
        found = next((i for i, o in enumerate(result) if o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            result = [o for o in result if o.get(key) != item[key]]
            continue
        if found is None:
            merged = _merge_map(kind, {}, item, path)
            if merged is not None:
                result.append(merged)
        else:
            merged = _merge_map(kind, result[found], item, path)
            if merged is None:
                result.pop(found)
            else:
                result[found] = merged
    return result


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    """Items named in ``order`` first, in that order, then the rest as they were."""

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [o.get(key) if key and isinstance(o, dict) else o for o in order]
    rank = {repr(v): i for i, v in enumerate(wanted)}
    listed = sorted(
        (i for i in items if repr(ident(i)) in rank), key=lambda i: rank[repr(ident(i))]
    )
    return listed + [i for i in items if repr(ident(i)) not in rank]
