"""BackendTrafficPolicy (and HTTPLocalRateLimitPolicy) attachment (GEP-713, direct policy
attachment): which policy a Service gets, and each policy's status. Each kind is attached
on its own: a Service may have one policy of each.

- A policy attaches to the Services of its own namespace that its ``targetRefs`` name.
- Two policies naming the same Service conflict: the older wins (creation time, then
  "namespace/name" alphabetically, as GEP-713 orders them); the other's entry for that
  Service says ``Accepted=False, reason Conflicted`` and names the winner.
- A Service that does not exist: ``Accepted=False, reason TargetNotFound``.

Status follows GEP-713's PolicyStatus: one ``ancestors[]`` entry per target (the ancestor
of a policy on a Service is the Service), with Tulle's controllerName, each condition
keeping its lastTransitionTime while its status does not change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from agent.model.backendpolicy import PolicyTargetReference
from agent.model.core import Service
from agent.model.meta import ObjectMeta
from gatewayapi.types import CONTROLLER_NAME

StatusDict = dict[str, Any]
ServiceKey = tuple[str, str]


class _Spec(Protocol):
    @property
    def target_refs(self) -> Sequence[PolicyTargetReference]: ...


class TargetedPolicy(Protocol):
    """A policy kind with GEP-713 ``targetRefs`` to Services."""

    @property
    def kind(self) -> str: ...
    @property
    def metadata(self) -> ObjectMeta: ...
    @property
    def spec(self) -> _Spec: ...


P = TypeVar("P", bound=TargetedPolicy)


@dataclass(frozen=True, slots=True)
class Attachment(Generic[P]):
    """``winners``: the policy each targeted Service gets; ``statuses``: each policy's
    ``status`` dict by "namespace/name"."""

    winners: dict[ServiceKey, P]
    statuses: dict[str, StatusDict]


def _age(policy: TargetedPolicy) -> tuple[datetime, str]:
    created = policy.metadata.creation_timestamp or datetime.max.replace(tzinfo=UTC)
    return created, f"{policy.metadata.namespace}/{policy.metadata.name}"


def winners(policies: Iterable[P], services: Iterable[ServiceKey]) -> dict[ServiceKey, P]:
    """The policy each existing, targeted Service gets (the oldest naming it)."""
    return attach(policies, services, {}, datetime.now(UTC)).winners


def attach(
    policies: Iterable[P],
    services: Iterable[ServiceKey | Service],
    previous: Mapping[str, StatusDict],
    now: datetime,
) -> Attachment[P]:
    """``previous``: each policy's status as served (for transition times)."""
    existing = {
        (s.metadata.namespace, s.metadata.name) if isinstance(s, Service) else s
        for s in services
    }
    ordered = sorted(policies, key=_age)
    won: dict[ServiceKey, P] = {}
    statuses: dict[str, StatusDict] = {}
    for policy in ordered:
        ns = policy.metadata.namespace
        key = f"{ns}/{policy.metadata.name}"
        before = _previous_conditions(previous.get(key))
        ancestors = []
        for ref in policy.spec.target_refs:
            service = (ns, ref.name)
            if service not in existing:
                accepted = (False, "TargetNotFound", f"Service {ns}/{ref.name} not found")
            elif service in won:
                winner = won[service].metadata.name
                accepted = (False, "Conflicted",
                            f"Service {ns}/{ref.name} already has {policy.kind} "
                            f"{ns}/{winner}, which is older: it applies, this one does not")
            else:
                won[service] = policy
                accepted = (True, "Accepted", f"applies to Service {ns}/{ref.name}")
            condition = _condition(before.get(ref.name), *accepted,
                                   policy.metadata.generation, now)
            ancestors.append({
                "ancestorRef": {"group": "", "kind": "Service", "name": ref.name,
                                "namespace": ns},
                "controllerName": CONTROLLER_NAME,
                "conditions": [condition],
            })
        statuses[key] = {"ancestors": ancestors}
    return Attachment(won, statuses)


def targeted_services(
    policies: Iterable[TargetedPolicy], services: Iterable[Service]
) -> frozenset[ServiceKey]:
    """The existing Services of each policy's own namespace its ``targetRefs`` name. The
    waypoint enforces these kinds, so the datapath steers these Services' TCP ports to it
    (``agent.datapath.desired.l7_keys``) and the waypoint routes them to themselves when no
    HTTPRoute does (``l7proxy.authz.default_routes``): otherwise a Service with only a rate
    limit or a BackendTrafficPolicy would keep plain L4 and the policy would do nothing. A
    conflicted policy's Service is steered too: the winner names it."""
    existing = {(s.metadata.namespace, s.metadata.name) for s in services}
    named = {
        (policy.metadata.namespace, ref.name)
        for policy in policies
        for ref in policy.spec.target_refs
        if (ref.group, ref.kind) in (("", "Service"), ("core", "Service"))
    }
    return frozenset(named & existing)


def _previous_conditions(status: StatusDict | None) -> dict[str, StatusDict]:
    """The previous Accepted condition by target Service name."""
    out: dict[str, StatusDict] = {}
    for ancestor in (status or {}).get("ancestors") or ():
        if not isinstance(ancestor, Mapping) or ancestor.get("controllerName") != CONTROLLER_NAME:
            continue
        name = (ancestor.get("ancestorRef") or {}).get("name")
        for condition in ancestor.get("conditions") or ():
            if isinstance(condition, Mapping) and condition.get("type") == "Accepted":
                out[str(name)] = dict(condition)
    return out


def _condition(
    before: StatusDict | None, ok: bool, reason: str, message: str,
    generation: int | None, now: datetime,
) -> StatusDict:
    value = "True" if ok else "False"
    since = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if before is not None and before.get("status") == value and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    condition: StatusDict = {
        "type": "Accepted", "status": value, "reason": reason, "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
