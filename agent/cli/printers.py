"""What `tulle get` and `tulle describe` print (pure). Tables come from the server's ``Table``
responses, as kubectl's do, so every kind (custom resources with their printer columns
too) shows the columns a cluster defines for it; ``-o wide`` adds the priority > 0 ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

Obj = Mapping[str, Any]
PADDING = "   "


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "<none>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "<none>"
    return str(value)


def table(tables: Sequence[Obj], *, wide: bool, with_namespace: bool) -> str:
    """kubectl's rendering of one or more ``Table`` responses with the same columns:
    upper-cased headers, a NAMESPACE column first across namespaces (from each row's object
    metadata), priority > 0 columns only when ``wide``."""
    if not tables:
        return ""
    definitions = list(tables[0].get("columnDefinitions") or [])
    shown = [i for i, d in enumerate(definitions) if wide or not d.get("priority")]
    header = [str(definitions[i].get("name", "")).upper() for i in shown]
    if with_namespace:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for t in tables:
        for row in t.get("rows") or []:
            cells = list(row.get("cells") or [])
            line = [_cell(cells[i]) if i < len(cells) else "<none>" for i in shown]
            if with_namespace:
                meta = (row.get("object") or {}).get("metadata") or {}
                line.insert(0, str(meta.get("namespace", "")))
            rows.append(line)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        PADDING.join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def row_count(tables: Sequence[Obj]) -> int:
    return sum(len(t.get("rows") or []) for t in tables)


def as_list(items: Sequence[Obj], api_version: str, kind: str) -> dict[str, Any]:
    """kubectl's ``-o yaml|json`` of several objects: a v1 List whose items carry their
    apiVersion and kind (list responses leave them out)."""
    filled = [{"apiVersion": api_version, "kind": kind, **item} for item in items]
    return {"apiVersion": "v1", "kind": "List", "items": filled, "metadata": {}}


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False).rstrip()


def describe(obj: Obj, *, namespaced: bool) -> str:
    """One object in detail, conditions first (routes' and listeners' included)."""
    meta = obj.get("metadata") or {}
    lines = [f"Name:         {meta.get('name')}"]
    if namespaced:
        lines.append(f"Namespace:    {meta.get('namespace')}")
    lines += [
        f"Kind:         {obj.get('kind')} ({obj.get('apiVersion')})",
        f"Labels:       {_pairs(meta.get('labels') or {})}",
        f"Annotations:  {_pairs(meta.get('annotations') or {})}",
        f"Created:      {meta.get('creationTimestamp')}",
        f"Generation:   {meta.get('generation')}   ResourceVersion: {meta.get('resourceVersion')}",
    ]
    owners = meta.get("ownerReferences") or []
    if owners:
        lines.append(
            "Owned by:     " + ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners)
        )
    conditions = all_conditions(obj.get("status") or {})
    if conditions:
        lines.append("Conditions:")
        for where, cond in conditions:
            reason = f" ({cond.get('reason')})" if cond.get("reason") else ""
            msg = f": {cond.get('message')}" if cond.get("message") else ""
            lines.append(f"  {where}{cond.get('type')}={cond.get('status')}{reason}{msg}")
    for section in ("spec", "data", "status"):
        if obj.get(section):
            lines.append(f"{section.capitalize()}:")
            lines += ["  " + line for line in dump_yaml(obj[section]).splitlines()]
    return "\n".join(lines)


def events(items: Sequence[Obj], now: datetime | None = None) -> str:
    """kubectl describe's Events section, oldest first."""
    if not items:
        return "Events:       <none>"
    stamped = sorted(items, key=_event_time)
    rows = [
        ["Type", "Reason", "Age", "From", "Message"],
        ["----", "------", "----", "----", "-------"],
    ]
    for e in stamped:
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        count = int(e.get("count") or 1)
        age = _age(_event_time(e), now)
        rows.append(
            [
                str(e.get("type", "")),
                str(e.get("reason", "")),
                f"{age} (x{count})" if count > 1 else age,
                str(source),
                str(e.get("message", "")).strip(),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    return "Events:\n" + "\n".join(line.rstrip() for line in lines)


def _event_time(event: Obj) -> str:
    meta = event.get("metadata") or {}
    return str(
        event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp") or ""
    )


def _age(stamp: str, now: datetime | None) -> str:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "<none>"


def all_conditions(status: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Top-level conditions, then each route parent's and each listener's, with where."""
    found: list[tuple[str, Mapping[str, Any]]] = [
        ("", c) for c in status.get("conditions", []) or []
    ]
    for parent in status.get("parents", []) or []:
        ref = parent.get("parentRef", {})
        found += [(f"parent {ref.get('name')}: ", c) for c in parent.get("conditions", []) or []]
    for listener in status.get("listeners", []) or []:
        found += [
            (f"listener {listener.get('name')}: ", c) for c in listener.get("conditions", []) or []
        ]
    return found
