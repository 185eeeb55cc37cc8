"""The Pod columns ``kubectl get pods`` prints that are computed from its status, as the
API server's printer computes them (pkg/printers/internalversion/printers.go printPod):
STATUS is the phase, or ``status.reason``, then the first init container that has not
succeeded (``Init:<Reason>``, ``Init:ExitCode:<n>``, ``Init:<done>/<all>``), else the
app containers' waiting or terminated reasons (``CrashLoopBackOff``,
``CreateContainerConfigError``, ``Completed`` ...), ``Terminating`` once deleted. RESTARTS
counts the init containers' restarts while the pod initializes, else the app containers'.
(Restartable "sidecar" init containers are not run by the lab kubelet and not treated
apart here.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = Mapping[str, Any]


def _list(obj: Obj, *path: str) -> list[Any]:
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, list) else []


def _initialized(obj: Obj) -> bool:
    return any(c.get("type") == "Initialized" and c.get("status") == "True"
               for c in _list(obj, "status", "conditions"))


def _terminated_reason(term: Obj, prefix: str) -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def _init_reason(obj: Obj) -> str | None:
    """The STATUS while an init container has not succeeded; None when none is pending."""
    total = len(_list(obj, "spec", "initContainers"))
    for i, status in enumerate(_list(obj, "status", "initContainerStatuses")):
        state = status.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode") == 0:
            continue
        if term is not None:
            return _terminated_reason(term, "Init:")
        if waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return f"Init:{waiting['reason']}"
        return f"Init:{i}/{total}"
    return None


def pod_status_reason(obj: Obj) -> str:
    status = obj.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Pending")
    for c in _list(obj, "status", "conditions"):
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init = _init_reason(obj)
    if init is not None:
        reason = init
    if init is None or _initialized(obj):
        has_running = False
        for cs in reversed(_list(obj, "status", "containerStatuses")):
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif term is not None:
                reason = _terminated_reason(term, "")
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in _list(obj, "status", "conditions"))
            reason = "Running" if ready else "NotReady"
    deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        return "Unknown"
    if deleting and status.get("phase") not in ("Succeeded", "Failed"):
        return "Terminating"
    return reason


def pod_restarts(obj: Obj) -> int:
    initializing = _init_reason(obj) is not None and not _initialized(obj)
    key = "initContainerStatuses" if initializing else "containerStatuses"
    return sum(int(s.get("restartCount", 0)) for s in _list(obj, "status", key))
