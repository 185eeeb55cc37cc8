"""Request bodies: JSON, YAML (no aliases, bounded nesting) or kubectl's protobuf, into JSON
values; anything else is refused with a Status naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

import yaml

from lab.apiserver import protobuf
from lab.apiserver.errors import ApiError, bad_request

MAX_DEPTH = 100
"""Deeper bodies are refused before anything recurses over them (no Kubernetes object nests
anywhere near this)."""


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def _yaml(text: str) -> Any:
    """One YAML document. Aliases are refused (an alias bomb expands a few bytes into
    gigabytes); nesting is bounded as for JSON."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise bad_request("YAML aliases (*name) are not accepted in request bodies")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise bad_request(f"the request body nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.safe_load(text)


def decode(content_type: str, raw: bytes) -> Any:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/vnd.kubernetes.protobuf":
        try:
            return protobuf.decode(raw)
        except (protobuf.ProtobufError, UnicodeDecodeError, ValueError) as err:
            raise ApiError(415, f"the body of the request could not be read: {err}") from None
    if "protobuf" in ctype or "cbor" in ctype:
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            f"application/json, application/yaml (got {ctype})",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the request body is not UTF-8") from None
    is_yaml = "yaml" in ctype
    try:
        value = _yaml(text) if is_yaml else json.loads(text)
    except RecursionError:
        raise bad_request(f"the request body nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, yaml.YAMLError) as err:
        kind = "YAML" if is_yaml else "JSON"
        raise bad_request(f"the request body is not valid {kind}: {err}") from None
    if not _depth_ok(value):
        raise bad_request(f"the request body nests deeper than {MAX_DEPTH} levels")
    return value
