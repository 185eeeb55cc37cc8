"""Which lists of the built-in kinds merge, and by which key (``patchMergeKey``).

Read from the ``patchStrategy``/``patchMergeKey`` tags of the Kubernetes API types
(``builtin_types.py``), the same table the OpenAPI documents kubectl reads are made from;
every other list is atomic (replaced whole), as in the API. "" means a set of scalars.
Kinds that are not built in (Gateway API, CRDs) have ObjectMeta's lists only.
"""

from __future__ import annotations

import functools

from lab.apiserver import builtin_types


def merge_key(kind: str, path: tuple[str, ...]) -> str | None:
    """The merge key of the list at ``path`` (field names, list items skipped), or None."""
    return builtin_types.merge_key(kind, path)


@functools.cache
def merge_key_table(kind: str) -> dict[str, str]:
    """Every merging list of ``kind`` (dotted path: merge key), metadata's included."""
    table: dict[str, str] = {}
    root = builtin_types.kind_message(kind)
    stack: list[tuple[str, tuple[str, ...], frozenset[str]]] = [
        (builtin_types.OBJECT_META, ("metadata",), frozenset())
    ]
    if root is not None:
        stack.append((root, (), frozenset()))
    messages = builtin_types.messages()
    while stack:
        name, prefix, seen = stack.pop()
        for field in messages[name].by_name.values():
            path = (*prefix, field.name)
            if prefix == () and field.name == "metadata":
                continue  # walked from ObjectMeta above
            key = builtin_types.merge_key(kind, path)
            if key is not None:
                table[".".join(path)] = key
            child = field.map_value or field.type
            if child in messages and child not in seen:
                stack.append((child, path, seen | {name}))
    return table
