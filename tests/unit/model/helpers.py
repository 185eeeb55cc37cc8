"""Helpers for converter tests: edit a manifest at a field path, capture conversion errors."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.resource import Resource

DELETE = object()
"""Pass as the value to ``edit`` to remove the field."""

_TOKEN = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def edit(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` with ``path`` (e.g. "spec.ports[0].port") set to ``value``
    (or removed with DELETE). Missing intermediate objects are created."""
    result = copy.deepcopy(doc)
    tokens: list[str | int] = [int(index) if index else key for index, key in _TOKEN.findall(path)]
    node: Any = result
    for token in tokens[:-1]:
        if isinstance(token, str) and token not in node:
            node[token] = {}
        node = node[token]
    last = tokens[-1]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return result


def error_of(doc: Any) -> str:
    """The message of the ConversionError that ``doc`` raises."""
    with pytest.raises(ConversionError) as info:
        from_dict(doc)
    return str(info.value)


def round_trip(doc: dict[str, Any]) -> Resource:
    """Convert ``doc``, and check that writing and reading it back changes nothing."""
    resource = from_dict(doc)
    written = to_dict(resource)
    assert from_dict(written) == resource
    assert to_dict(from_dict(written)) == written
    return resource
