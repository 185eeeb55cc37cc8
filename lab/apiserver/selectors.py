"""Label and field selectors, parsed once per request into predicates over objects.

Label selectors take the full syntax (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a``, ``!a``); field selectors take ``=``, ``==`` and ``!=`` over the fields
each kind supports, as the real server does, and reject the rest with 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from lab.apiserver.errors import bad_request

Predicate = Callable[[Mapping[str, Any]], bool]

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
_KIND_FIELDS = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "Node": ("spec.unschedulable",),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
}

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=()]+)\s*(==|!=|=)\s*([^\s!=()]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


Requirement = tuple[str, str, frozenset[str]]  # key, operator, values


def _label_holds(req: Requirement, labels: Mapping[str, str]) -> bool:
    key, op, values = req
    if op == "exists":
        return key in labels
    if op == "!exists":
        return key not in labels
    if op in ("=", "==", "in"):
        return labels.get(key) in values
    return labels.get(key) not in values  # "!=", "notin": also true when the label is absent


def parse_label_selector(text: str) -> Predicate:
    reqs: list[Requirement] = []
    for req in _split_requirements(text):
        if m := _SET_RE.match(req):
            key, op, raw = m.groups()
            reqs.append((key, op, frozenset(v.strip() for v in raw.split(",") if v.strip())))
        elif m := _EQ_RE.match(req):
            key, op, value = m.groups()
            reqs.append((key, op, frozenset({value})))
        elif m := _EXISTS_RE.match(req):
            negate, key = m.groups()
            reqs.append((key, "!exists" if negate else "exists", frozenset()))
        else:
            raise bad_request(f"unable to parse requirement: {req.strip()!r} in labelSelector")

    def predicate(obj: Mapping[str, Any]) -> bool:
        labels = _labels(obj)
        return all(_label_holds(r, labels) for r in reqs)

    return predicate


def field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str, kind: str) -> Predicate:
    allowed = (*_COMMON_FIELDS, *_KIND_FIELDS.get(kind, ()))
    reqs: list[tuple[str, bool, str]] = []  # field, equal, value
    for req in _split_requirements(text):
        m = _EQ_RE.match(req)
        if not m:
            raise bad_request(f"invalid selector: {req.strip()!r}; expected field=value")
        field, op, value = m.groups()
        if field not in allowed:
            raise bad_request(
                f'field label not supported: "{field}" (supported: {", ".join(allowed)})'
            )
        reqs.append((field, op != "!=", value))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((field_value(obj, f) == v) == equal for f, equal, v in reqs)

    return predicate
