"""Status of a ListenerSet (of a Tulle Gateway), and the condition and listener-status
builders it shares with the Gateway's (``gatewayapi/status.py``): Accepted (Accepted,
NotAllowed, ListenersNotValid) and Programmed, per listener the same as a Gateway's (a
conflicted one: Programmed False with the conflict's reason, as the ListenerSet conformance
tests want). Its own listeners only in its status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from agent.model.meta import Condition, ObjectMeta
from gatewayapi.analysis import Analysis
from gatewayapi.attach import ListenerState
from gatewayapi.listenersets import Verdict

StatusDict = dict[str, Any]


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conditions:
    """Builds conditions for one object, reusing previous transition times."""

    def __init__(self, meta: ObjectMeta, previous: Iterable[Condition], now: datetime) -> None:
        self.generation = meta.generation
        self.previous = {c.type: c for c in previous}
        self.now = now

    def make(self, type_: str, status: bool, reason: str, message: str = "") -> StatusDict:
        value = "True" if status else "False"
        before = self.previous.get(type_)
        since = self.now
        if before is not None and before.status == value and before.last_transition_time:
            since = before.last_transition_time
        condition: StatusDict = {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": format_time(since),
        }
        if self.generation is not None:
            condition["observedGeneration"] = self.generation
        return condition


def join(messages: Sequence[str]) -> str:
    return "; ".join(messages)


def listener_status(
    state: ListenerState, attached: int, now: datetime, previous: Iterable[Condition],
    meta: ObjectMeta | None = None,
) -> StatusDict:
    listener = state.listener
    make = Conditions(meta or state.gateway.metadata, previous, now)
    accepted, reason, message = state.accepted
    conditions = [make.make("Accepted", accepted, reason, message or "Listener is accepted")]
    if state.programmed:
        conditions.append(make.make("Programmed", True, "Programmed", "Listener is programmed"))
    elif state.origin is not None and state.conflicted:
        conditions.append(make.make("Programmed", False, state.conflicted, message))
    else:
        conditions.append(make.make("Programmed", False, "Invalid", "Listener is not programmed"))
    if state.refs:
        conditions.append(
            make.make("ResolvedRefs", False, state.refs[0][0], join([m for _, m in state.refs]))
        )
    else:
        conditions.append(make.make("ResolvedRefs", True, "ResolvedRefs", "References resolved"))
    if state.conflicted:
        conditions.append(make.make("Conflicted", True, state.conflicted, message))
    else:
        conditions.append(make.make("Conflicted", False, "NoConflicts", "No conflicts"))
    return {
        "name": state.origin.entry if state.origin else listener.name,
        "supportedKinds": [{"group": k.group, "kind": k.kind} for k in state.supported_kinds],
        "attachedRoutes": attached,
        "conditions": conditions,
    }


def is_true(status: StatusDict, type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in status["conditions"])


def listener_set_status(
    verdict: Verdict,
    analysis: Analysis,
    attached: dict[tuple[str, str], dict[str, int]],
    now: datetime,
) -> StatusDict:
    """A ListenerSet's status: its attachment, then its listeners as merged."""
    ls = verdict.listener_set
    make = Conditions(ls.metadata, ls.status.conditions, now)
    if not verdict.allowed:
        return {"conditions": [
            make.make("Accepted", False, verdict.reason, verdict.message),
            make.make("Programmed", False, verdict.reason, verdict.message),
        ]}
    key = ls.metadata.key
    states = [
        s for s in analysis.gateways[verdict.gateway].listeners
        if s.origin is not None and f"{s.origin.namespace}/{s.origin.name}" == key
    ]
    previous = {entry.name: entry.conditions for entry in ls.status.listeners}
    counts = attached.get(verdict.gateway, {})
    listeners = [
        listener_status(
            s, counts.get(s.listener.name, 0), now,
            previous.get(s.origin.entry if s.origin else "", ()), ls.metadata,
        )
        for s in states
    ]
    valid = [s for s in states if s.accepted[0]]
    if not valid:
        message = "no listener is valid"
        conditions = [
            make.make("Accepted", False, "ListenersNotValid", message),
            make.make("Programmed", False, "ListenersNotValid", message),
        ]
    else:
        some = len(valid) < len(states)
        conditions = [
            make.make(
                "Accepted", True, "ListenersNotValid" if some else "Accepted",
                "some listeners are not valid" if some else "ListenerSet is accepted",
            ),
            make.make("Programmed", True, "Programmed", "ListenerSet is programmed"),
        ]
    return {"conditions": conditions, "listeners": listeners}
