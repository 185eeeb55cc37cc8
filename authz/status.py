"""AuthorizationPolicy's status, in the policy-attachment style of GEP-713 (pure): one
``Accepted`` condition, True (reason Accepted, the message saying where it is enforced) or
False with reason TargetNotFound when a targetRef names no Service or Gateway. A policy that
fails validation never gets here: the API server refuses it, naming the field."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agent.model.authz import AuthorizationPolicy
from authz.applies import GATEWAY, SERVICE
from authz.steer import kernel_refusal

Status = dict[str, Any]


def policy_status(
    policy: AuthorizationPolicy,
    services: Collection[tuple[str, str]],
    gateways: Collection[tuple[str, str]],
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
) -> Status:
    """``services``/``gateways``: (namespace, name) of those that exist; ``previous``: the
    served conditions (a transition time is kept while the status holds)."""
    home = policy.metadata.namespace
    missing = [
        f"{r.kind} {home}/{r.name}"
        for r in policy.spec.target_refs
        if ((r.group, r.kind) == SERVICE and (home, r.name) not in services)
        or ((r.group, r.kind) == GATEWAY and (home, r.name) not in gateways)
    ]
    if missing:
        accepted, reason = False, "TargetNotFound"
        message = f"no {', '.join(missing)}: the policy applies to nothing there"
    else:
        accepted, reason = True, "Accepted"
        refusal = kernel_refusal(policy)
        message = (
            "enforced in the kernel on each client's node (L4 attributes only)"
            if refusal is None else f"enforced by the waypoint (the policy {refusal})"
        )
    value = "True" if accepted else "False"
    since = now
    for c in previous:
        if c.get("type") == "Accepted" and c.get("status") == value and c.get("lastTransitionTime"):
            since = datetime.strptime(c["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC)
    condition: Status = {
        "type": "Accepted",
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if policy.metadata.generation is not None:
        condition["observedGeneration"] = policy.metadata.generation
    return {"conditions": [condition]}
