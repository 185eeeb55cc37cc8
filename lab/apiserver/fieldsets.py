"""Field sets: which leaf fields of an object a manager set, in Kubernetes' FieldsV1 form.

A path is a tuple of tokens: ``"f:name"`` for a field, ``'k:{"name":"web"}'`` for the item of a
keyed list (the lists strategic merge patch merges by key), ``"v:<json>"`` for the member of a
set of scalars. Atomic lists, scalars and empty maps are leaves. ``to_fields_v1`` and
``from_fields_v1`` convert to and from ``managedFields[].fieldsV1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from lab.apiserver.smp_meta import merge_key

Path = tuple[str, ...]
_IGNORED = {"apiVersion", "kind", "status"}
_IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds"}  # fmt: skip


def _item_token(item: Any, key: str) -> str | None:
    if key == "":
        return "v:" + json.dumps(item, sort_keys=True, separators=(",", ":"))
    if isinstance(item, Mapping) and key in item:
        return "k:" + json.dumps({key: item[key]}, sort_keys=True, separators=(",", ":"))
    return None


def leaf_paths(kind: str, obj: Mapping[str, Any]) -> set[Path]:
    out: set[Path] = set()
    for field, value in obj.items():
        if field in _IGNORED:
            continue
        if field == "metadata" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k not in _IGNORED_META}
            if not value:
                continue
        _walk(kind, (field,), ("f:" + field,), value, out)
    return out


def _walk(kind: str, names: tuple[str, ...], path: Path, value: Any, out: set[Path]) -> None:
    if isinstance(value, Mapping) and value:
        for field, child in value.items():
            _walk(kind, (*names, field), (*path, "f:" + field), child, out)
        return
    key = merge_key(kind, names) if isinstance(value, list) else None
    if key is None or not value:
        out.add(path)
        return
    for item in value:
        token = _item_token(item, key)
        if token is None:
            out.add(path)  # an item without its key: treat the list as atomic
            continue
        if key == "" or not isinstance(item, Mapping):
            out.add((*path, token))
            continue
        for field, child in item.items():
            _walk(kind, names, (*path, token, "f:" + field), child, out)


def get(obj: Any, path: Path) -> Any:
    node = obj
    for token in path:
        node = _child(node, token)
        if node is _MISSING:
            return _MISSING
    return node


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _child(node: Any, token: str) -> Any:
    kind, _, rest = token.partition(":")
    if kind == "f":
        return node.get(rest, _MISSING) if isinstance(node, Mapping) else _MISSING
    if not isinstance(node, list):
        return _MISSING
    wanted = json.loads(rest)
    for item in node:
        if kind == "v" and item == wanted:
            return item
        if (
            kind == "k"
            and isinstance(item, Mapping)
            and all(item.get(k) == v for k, v in wanted.items())
        ):
            return item
    return _MISSING


def remove(obj: Any, path: Path) -> None:
    """Remove the field at ``path`` (in place), and any map or keyed item left empty by it."""
    parents = [obj]
    for token in path[:-1]:
        child = _child(parents[-1], token)
        if child is _MISSING:
            return
        parents.append(child)
    if _is_key_field(path):
        # A key field goes with its item, once nothing but keys is left in it: removing it
        # alone would leave an item no one can address. (Order-independent this way.)
        if not _only_keys(parents[-1], path[-2]):
            return
    else:
        _drop(parents[-1], path[-1])
    # parents[d] was reached through path[d - 1]: drop it from parents[d - 1] if now empty.
    for depth in range(len(parents) - 1, 0, -1):
        node = parents[depth]
        if isinstance(node, Mapping) and _only_keys(node, path[depth - 1]):
            _drop(parents[depth - 1], path[depth - 1])
        else:
            break


def _is_key_field(path: Path) -> bool:
    if len(path) < 2 or not path[-1].startswith("f:") or not path[-2].startswith("k:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _only_keys(node: Mapping[str, Any], token: str) -> bool:
    """A keyed list item left with nothing but its key, or an empty map."""
    if not node:
        return True
    kind, _, rest = token.partition(":")
    return kind == "k" and set(node) <= set(json.loads(rest))


def _drop(node: Any, token: str) -> None:
    kind, _, rest = token.partition(":")
    if kind == "f" and isinstance(node, dict):
        node.pop(rest, None)
    elif isinstance(node, list):
        target = _child(node, token)
        if target is not _MISSING:
            node.remove(target)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for token in path:
            node = node.setdefault(token, {})
    return _mark(root)


def _mark(node: dict[str, Any]) -> dict[str, Any]:
    # A token whose children exist and that is itself a field of the object carries ".": {}.
    return {
        k: ({".": {}, **_mark(v)} if v and k.startswith("k:") else _mark(v))
        for k, v in node.items()
    }


def from_fields_v1(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for token, children in fields.items():
        if token == ".":
            continue
        here = (*prefix, token)
        real = {k: v for k, v in (children or {}).items() if k != "."}
        if real:
            out |= from_fields_v1(real, here)
        else:
            out.add(here)
    return out


def dotted(path: Path) -> str:
    """``.spec.replicas``, ``.spec.template.spec.containers[name="web"].image``."""
    text = ""
    for token in path:
        kind, _, rest = token.partition(":")
        if kind == "f":
            text += "." + rest
        elif kind == "k":
            text += (
                "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
            )
        else:
            text += f"[={rest}]"
    return text
