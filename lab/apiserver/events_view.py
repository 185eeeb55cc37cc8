"""``events.k8s.io/v1`` Events: a second view of the core/v1 Events, as a cluster serves
them (one storage, converted on the way in and out), so that a controller recording with
the newer events API and ``kubectl events`` (which reads core/v1) see the same Events.

The conversion is Kubernetes' own field mapping (``pkg/apis/events/v1/conversion.go``):
``regarding`` is ``involvedObject``, ``note`` is ``message``, ``reportingController`` is
``reportingComponent``, and the ``deprecated*`` fields are the old recorder's source,
first/last timestamps and count; the rest keep their names.
"""

from __future__ import annotations

from typing import Any

from lab.apiserver.resources import Resource, lookup
from lab.apiserver.routing import Target

GROUP = "events.k8s.io"
_CORE_TO_VIEW = {
    "involvedObject": "regarding",
    "message": "note",
    "reportingComponent": "reportingController",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
}
_VIEW_TO_CORE = {v: k for k, v in _CORE_TO_VIEW.items()}


def is_view(resource: Resource) -> bool:
    return resource.group == GROUP and resource.kind == "Event"


def to_view(core: dict[str, Any], api_version: str = f"{GROUP}/v1") -> dict[str, Any]:
    out = {_CORE_TO_VIEW.get(k, k): v for k, v in core.items()}
    return {**out, "apiVersion": api_version}


def to_core(view: Any) -> Any:
    """A body sent to events.k8s.io in core/v1 form (anything else is left for the usual
    checks to refuse)."""
    if not isinstance(view, dict):
        return view
    out = {_VIEW_TO_CORE.get(k, k): v for k, v in view.items() if k not in _CORE_TO_VIEW}
    if "apiVersion" in view:
        out["apiVersion"] = "v1"
    return out


def core_target(target: Target) -> Target:
    core = lookup("", "v1", "events")
    assert core is not None
    return Target(core, "v1", target.namespace, target.name, target.subresource)
