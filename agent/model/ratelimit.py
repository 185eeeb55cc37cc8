"""policy.tulle.io/v1alpha1 HTTPLocalRateLimitPolicy: local rate limits on the Services it
targets (GEP-713 ``targetRefs``), in the shape of Linkerd's HTTPLocalRateLimitPolicy
(``total``, ``identity``, ``overrides``), so its users can carry their numbers over.

Linkerd targets a Server (its inbound proxy's port); Tulle targets Services, counted by
each node's waypoint (``l7proxy/ratelimit/README.md``: how a limit divides between nodes).
Which policy wins for a Service: ``gatewayapi/backendpolicy.py`` (the oldest, as there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.model.backendpolicy import PolicyTargetReference
from agent.model.meta import ObjectMeta


@dataclass(frozen=True, slots=True)
class Limit:
    requests_per_second: int


@dataclass(frozen=True, slots=True)
class ClientReference:
    """A ServiceAccount whose pods an override covers (Linkerd's clientRefs entry); an
    empty namespace means the policy's own."""

    kind: str
    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class RateLimitOverride:
    requests_per_second: int
    client_refs: tuple[ClientReference, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPLocalRateLimitPolicySpec:
    target_refs: tuple[PolicyTargetReference, ...] = ()
    total: Limit | None = None
    identity: Limit | None = None
    overrides: tuple[RateLimitOverride, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPLocalRateLimitPolicy:
    kind: ClassVar[str] = "HTTPLocalRateLimitPolicy"
    metadata: ObjectMeta
    spec: HTTPLocalRateLimitPolicySpec = field(default_factory=HTTPLocalRateLimitPolicySpec)
