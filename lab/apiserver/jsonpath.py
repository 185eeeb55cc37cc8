"""The JSONPath of CRD ``additionalPrinterColumns`` (pure): fields (``.a.b``), every item
(``[*]``), an index (``[0]``) and an equality filter (``[?(@.type=="Ready")]``), which is
what the Gateway API's columns and most CRDs use. The API server checks a CRD's paths with
``parse`` and evaluates them with ``find``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_FIELD = re.compile(r"\.([A-Za-z0-9_-]+)")
_FILTER = re.compile(
    r"""\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*==\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_.-]+))\)"""
)
Step = tuple[str, Any]  # ("field", name) | ("all", None) | ("index", n) | ("filter", (path, value))


class JsonPathError(ValueError):
    """The path is not one this server evaluates; the message says where it stops."""


def parse(path: str) -> tuple[Step, ...]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if not text.startswith("."):
        raise JsonPathError(f"{path!r}: must start with '.'")
    steps: list[Step] = []
    i = 0
    while i < len(text):
        field = _FIELD.match(text, i)
        if field is not None:
            steps.append(("field", field.group(1)))
            i = field.end()
            continue
        if text[i] != "[" or "]" not in text[i:]:
            raise JsonPathError(f"{path!r}: cannot read {text[i:]!r}")
        end = text.index("]", i)
        inner = text[i + 1 : end]
        filtered = _FILTER.fullmatch(inner)
        if inner == "*":
            steps.append(("all", None))
        elif re.fullmatch(r"-?[0-9]+", inner):
            steps.append(("index", int(inner)))
        elif filtered is not None:
            keys = tuple(filtered.group(1).split(".")[1:])
            value = next(g for g in filtered.groups()[1:] if g is not None)
            steps.append(("filter", (keys, value)))
        else:
            raise JsonPathError(f"{path!r}: unsupported selector [{inner}]")
        i = end + 1
    return tuple(steps)


def _dig(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def find(obj: Any, steps: tuple[Step, ...]) -> list[Any]:
    """Every value the path selects in ``obj`` (none when a field is missing)."""
    values = [obj]
    for op, arg in steps:
        out: list[Any] = []
        for value in values:
            if op == "field" and isinstance(value, Mapping) and arg in value:
                out.append(value[arg])
            elif op == "all" and isinstance(value, list):
                out.extend(value)
            elif op == "all" and isinstance(value, Mapping):
                out.extend(value.values())
            elif op == "index" and isinstance(value, list) and -len(value) <= arg < len(value):
                out.append(value[arg])
            elif op == "filter" and isinstance(value, list):
                keys, wanted = arg
                out.extend(v for v in value if _text(_dig(v, keys)) == wanted)
        values = out
    return values


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)
