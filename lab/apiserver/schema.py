"""Structural OpenAPI v3 schemas of CustomResourceDefinitions: validation and unknown fields.

The subset CRDs use: ``type`` (object, array, string, integer, number, boolean), ``properties``,
``additionalProperties``, ``items``, ``required``, ``enum``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``minItems``/``maxItems``, ``pattern``, ``nullable``,
``x-kubernetes-int-or-string`` and ``x-kubernetes-preserve-unknown-fields``. ``metadata``,
``apiVersion`` and ``kind`` are checked elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import re2

Problem = tuple[str, str]  # (field path, message)
_SKIP = frozenset({"apiVersion", "kind", "metadata"})


def _type_ok(schema: Mapping[str, Any], value: Any) -> bool:
    if value is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, int | str) and not isinstance(value, bool)
    expected = schema.get("type")
    if expected is None:
        return True
    if expected == "object":
        return isinstance(value, Mapping)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def validate(schema: Mapping[str, Any], value: Any, path: str = "") -> list[Problem]:
    """Everything wrong with ``value`` under ``schema`` (unknown fields are not reported here)."""
    problems: list[Problem] = []
    where = path or "<root>"
    if not _type_ok(schema, value):
        return [(where, f"Invalid value: {_describe(value)}: must be of type {schema.get('type')}")]
    if value is None:
        return []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        problems.append((where, f'Unsupported value: "{value}": supported values: {allowed}'))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(
                (
                    where,
                    f"Invalid value: {value}: should be >= {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(
                (
                    where,
                    f"Invalid value: {value}: should be <= {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(
                (
                    where,
                    f'Invalid value: "{value}": should be at least {schema["minLength"]} chars',
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append((where, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "pattern" in schema and not _matches(schema["pattern"], value):
            problems.append(
                (where, f"Invalid value: \"{value}\": should match '{schema['pattern']}'")
            )
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(
                (
                    where,
                    f"Invalid value: {len(value)}: should have at least {schema['minItems']} items",
                )
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(
                (where, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
            )
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                problems += validate(items, item, f"{path}[{i}]")
    if isinstance(value, Mapping):
        for name in schema.get("required") or []:
            if name not in value and not (path == "" and name in _SKIP):
                problems.append((_join(path, name), "Required value"))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, child in value.items():
            if path == "" and name in _SKIP:
                continue
            if name in props:
                problems += validate(props[name], child, _join(path, name))
            elif isinstance(extra, Mapping):
                problems += validate(extra, child, _join(path, name))
    return problems


def unknown_fields(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields the schema neither declares nor preserves (the API server prunes these)."""
    if not isinstance(value, Mapping) or schema.get("x-kubernetes-preserve-unknown-fields"):
        if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            return [
                u
                for i, v in enumerate(value)
                for u in unknown_fields(schema["items"], v, f"{path}[{i}]")
            ]
        return []
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    out: list[str] = []
    for name, child in value.items():
        if path == "" and name in _SKIP:
            continue
        if name in props:
            out += unknown_fields(props[name], child, _join(path, name))
        elif isinstance(extra, Mapping):
            out += unknown_fields(extra, child, _join(path, name))
        elif extra is not True:
            out.append(_join(path, name))
    return out


def prune(schema: Mapping[str, Any], value: Any, root: bool = True) -> Any:
    """``value`` without its unknown fields (the root's apiVersion, kind and metadata are
    checked elsewhere: a CRD's ``metadata: {type: object}`` does not prune them)."""
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [prune(schema["items"], v, False) for v in value]
    if not isinstance(value, Mapping) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    out = {}
    for name, child in value.items():
        if root and name in _SKIP:
            out[name] = child
        elif name in props:
            out[name] = prune(props[name], child, False)
        elif isinstance(extra, Mapping):
            out[name] = prune(extra, child, False)
        elif extra is True:
            out[name] = child
    return out


def _matches(pattern: str, text: str) -> bool:
    """RE2 (linear time) search, as the rest of Tulle matches user-supplied patterns; a
    pattern RE2 cannot compile fails the value rather than the server."""
    try:
        return re2.search(pattern, text) is not None
    except re2.error:
        return False


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return str(value)
