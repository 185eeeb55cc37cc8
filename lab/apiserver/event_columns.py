"""The columns ``kubectl get events`` prints, as the API server's ``printEvent`` computes
them: Events recorded the old way (firstTimestamp, lastTimestamp, count) and the new way
(eventTime, series, reportingController) read alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Obj = Mapping[str, Any]
Column = tuple[str, str, int, Callable[[Obj], Any]]  # name, type, priority, cell


def _since(stamp: Any, human: Callable[[float], str]) -> str:
    """How long ago an RFC 3339 time (with or without fractions) was; "<unknown>" if unset."""
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return human((datetime.now(UTC) - then).total_seconds())


# core/v1 name -> events.k8s.io/v1 name: a watch of either shape prints alike.
_VIEW = {
    "involvedObject": "regarding",
    "message": "note",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "reportingComponent": "reportingController",
}


def _f(o: Obj, core: str, default: Any = None) -> Any:
    value = o.get(core)
    return o.get(_VIEW[core], default) if value is None else value


def _first(o: Obj, human: Callable[[float], str]) -> str:
    return _since(_f(o, "firstTimestamp") or o.get("eventTime"), human)


def _last(o: Obj, human: Callable[[float], str]) -> str:
    series = o.get("series")
    if isinstance(series, Mapping):
        return _since(series.get("lastObservedTime"), human)
    if _f(o, "lastTimestamp"):
        return _since(_f(o, "lastTimestamp"), human)
    return _first(o, human)


def _count(o: Obj) -> int:
    series = o.get("series")
    if isinstance(series, Mapping):
        return int(series.get("count") or 0)
    return int(_f(o, "count") or 0) or 1


def _object(o: Obj) -> str:
    ref = _f(o, "involvedObject") or {}
    kind, name = str(ref.get("kind", "")).lower(), ref.get("name", "")
    return f"{kind}/{name}" if name else kind


def _source(o: Obj) -> str:
    source = _f(o, "source") or {}
    if source.get("component"):
        host = source.get("host")
        return f"{source['component']}, {host}" if host else str(source["component"])
    controller, instance = _f(o, "reportingComponent", ""), o.get("reportingInstance", "")
    return f"{controller}, {instance}" if controller and instance else str(controller)


def columns(human: Callable[[float], str]) -> list[Column]:
    return [
        ("Last Seen", "string", 0, lambda o: _last(o, human)),
        ("Type", "string", 0, lambda o: o.get("type", "")),
        ("Reason", "string", 0, lambda o: o.get("reason", "")),
        ("Object", "string", 0, _object),
        ("Subobject", "string", 1, lambda o: (_f(o, "involvedObject") or {}).get("fieldPath", "")),
        ("Source", "string", 1, _source),
        ("Message", "string", 0, lambda o: str(_f(o, "message", "")).strip()),
        ("First Seen", "string", 1, lambda o: _first(o, human)),
        ("Count", "string", 1, _count),
        ("Name", "string", 1, lambda o: o["metadata"]["name"]),
    ]
