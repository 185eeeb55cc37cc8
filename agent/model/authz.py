"""security.tulle.io/v1 AuthorizationPolicy: who may call a workload and how, in the shape of
Istio's security.istio.io/v1 AuthorizationPolicy (selector or targetRefs, action, rules of
from.source, to.operation and when), so that a policy ports by changing its apiVersion.

The converter (``convert_authz.py``) refuses what Tulle does not enforce (CUSTOM, JWT request
principals, ``request.auth.*`` conditions) rather than ignoring it: an ignored field would
widen a DENY or an ALLOW silently. The semantics are ``authz.evaluate`` (pure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from agent.model.meta import ObjectMeta
from agent.model.peerauth import WorkloadSelector

__all__ = [
    "Action",
    "AuthorizationPolicy",
    "AuthorizationPolicySpec",
    "Condition",
    "Operation",
    "PolicyTargetReference",
    "Rule",
    "RuleFrom",
    "RuleTo",
    "Source",
    "WorkloadSelector",
]


class Action(StrEnum):
    """Istio's actions but CUSTOM (an external authorizer Tulle does not have)."""

    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"


@dataclass(frozen=True, slots=True)
class Source:
    """Fields AND together, the values of one field OR; unset matches any. ``principals``
    are SPIFFE IDs without "spiffe://" (``cluster.local/ns/shop/sa/web``);
    ``service_accounts`` are "namespace/name"."""

    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    not_service_accounts: tuple[str, ...] = ()
    ip_blocks: tuple[str, ...] = ()
    not_ip_blocks: tuple[str, ...] = ()
    remote_ip_blocks: tuple[str, ...] = ()
    not_remote_ip_blocks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """``ports`` are strings, as Istio writes them ("8080")."""

    hosts: tuple[str, ...] = ()
    not_hosts: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    not_ports: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleFrom:
    source: Source = field(default_factory=Source)


@dataclass(frozen=True, slots=True)
class RuleTo:
    operation: Operation = field(default_factory=Operation)


@dataclass(frozen=True, slots=True)
class Condition:
    """``key`` such as ``request.headers[x-token]`` or ``source.namespace``."""

    key: str
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A request matches when it matches one ``from``, one ``to`` and every ``when``; an
    unset list matches any. ``Rule()`` (``rules: [{}]``) matches every request."""

    from_: tuple[RuleFrom, ...] = ()
    to: tuple[RuleTo, ...] = ()
    when: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyTargetReference:
    """A Service (group "") or a Gateway (gateway.networking.k8s.io) of the policy's
    namespace (Istio: a reference to another namespace is refused)."""

    kind: str
    name: str
    group: str = ""


@dataclass(frozen=True, slots=True)
class AuthorizationPolicySpec:
    """No rules: an ALLOW policy matches nothing (so denies every request to what it
    selects), a DENY or AUDIT policy matches nothing."""

    selector: WorkloadSelector | None = None
    target_refs: tuple[PolicyTargetReference, ...] = ()
    action: Action = Action.ALLOW
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorizationPolicy:
    kind: ClassVar[str] = "AuthorizationPolicy"
    metadata: ObjectMeta
    spec: AuthorizationPolicySpec = field(default_factory=AuthorizationPolicySpec)
