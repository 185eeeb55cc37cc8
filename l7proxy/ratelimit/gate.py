"""HTTPLocalRateLimitPolicy in the waypoint: which buckets a routed request is charged to,
and the 429 answer for one over its limit. Per request after authorization, before the
pool limits and upstream (``Proxy.handle``).

The policy of a Service is the oldest one targeting it (``gatewayapi.backendpolicy``); a
request is limited by the policy of the Service it is sent to (its backend, as
BackendTrafficPolicy). Buckets, per targeted Service:

- ``total``: every request to the Service through this waypoint;
- ``identity``: one per caller identity, at ``identity.requestsPerSecond``, or at the
  override's rate when the caller's ServiceAccount is in an override (Linkerd's rule: an
  override replaces the identity limit for those clients; ``total`` still applies).

The caller's identity is the one ``l7proxy/authz.py`` derives (the ServiceAccount of the one
pod at the client address, hence its SPIFFE ID). Callers with no identity (no pod, or two, at
the address) share one bucket: an unknown client cannot escape the identity limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass

from agent.model.core import Service
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from authz import Peer
from gatewayapi import BackendTarget
from gatewayapi.backendpolicy import winners
from l7proxy.ratelimit.limiter import Limiter, Verdict

RATE_LIMITED_DROP = "RATE_LIMITED"
"""The flow's drop reason for a request over its limit."""
RATE_LIMITED_BODY = b"local_rate_limited\n"
"""Envoy's local rate limit filter's body, which dashboards already recognise."""
ANONYMOUS = "<no identity>"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one Service's policy means here."""

    policy: str  # "namespace/name"
    total: int | None
    identity: int | None
    overrides: Mapping[tuple[str, str], int]  # (namespace, ServiceAccount) -> rate
    charged: tuple[Hashable, int] | None = None
    """The one bucket every request is charged to, (key, rate), when it does not depend
    on the caller (``total`` alone): built once, not per request."""


@dataclass(frozen=True, slots=True)
class Limited:
    """A request refused: the verdict of the bucket that refused it and its policy."""

    policy: str
    verdict: Verdict

    def headers(self) -> list[tuple[bytes, bytes]]:
        """429's fields: Retry-After (RFC 9110, whole seconds, at least 1) and the
        RateLimit-Limit / -Remaining / -Reset fields of draft-ietf-httpapi-ratelimit-headers
        (its -07 revision's three fields; delta-seconds rounded up)."""
        v = self.verdict
        return [
            (b"content-type", b"text/plain"),
            (b"retry-after", b"%d" % max(1, math.ceil(v.retry_after))),
            (b"ratelimit-limit", b"%d" % v.limit),
            (b"ratelimit-remaining", b"%d" % v.remaining),
            (b"ratelimit-reset", b"%d" % max(1, math.ceil(v.reset))),
        ]


def plans(
    policies: Iterable[HTTPLocalRateLimitPolicy], services: Iterable[Service]
) -> dict[tuple[str, str], _Plan]:
    """(namespace, Service) -> its winning policy's limits (pure)."""
    keys = [(s.metadata.namespace, s.metadata.name) for s in services]
    out = {}
    for service, policy in winners(policies, keys).items():
        spec, home = policy.spec, policy.metadata.namespace
        overrides = {
            (ref.namespace or home, ref.name): o.requests_per_second
            for o in spec.overrides for ref in o.client_refs
        }
        total = spec.total.requests_per_second if spec.total else None
        identity = spec.identity.requests_per_second if spec.identity else None
        charged = ((service, "total"), total) if total is not None else None
        out[service] = _Plan(
            f"{home}/{policy.metadata.name}", total, identity, overrides,
            charged if identity is None and not overrides else None,
        )
    return out


class RateLimitGate:
    """The current plans, swapped on change; ``check`` per request. ``peer``: the caller's
    identity from its address (``AuthzGate.peer``); ``clock``: seconds, monotonic."""

    def __init__(self, peer: Callable[[str], Peer],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.peer = peer
        self.clock = clock
        self.limiter = Limiter()
        self._plans: dict[tuple[str, str], _Plan] = {}

    def swap(self, policies: Iterable[HTTPLocalRateLimitPolicy],
             services: Iterable[Service]) -> None:
        """New policies or Services. Buckets are kept (keyed by Service and caller), so a
        change elsewhere never hands out a fresh burst."""
        self._plans = plans(policies, services)

    def check(self, client: tuple[str, int], backend: BackendTarget) -> Limited | None:
        """Charge one request from ``client`` to ``backend``; the refusal, or None to go on."""
        plan = self._plans.get((backend.namespace, backend.name))
        if plan is None:
            return None
        charged = plan.charged
        if charged is not None:  # the caller does not matter: the bucket is ready
            refused = self.limiter.admit_one(charged[0], charged[1], self.clock())
            return None if refused is None else Limited(plan.policy, refused)
        service = (backend.namespace, backend.name)
        buckets: list[tuple[object, int]] = []
        if plan.total is not None:
            buckets.append(((service, "total"), plan.total))
        if plan.identity is not None or plan.overrides:
            peer = self.peer(client[0])
            rate, who = plan.identity, ANONYMOUS
            if peer.principal and peer.namespace and peer.service_account:
                who = peer.principal
                rate = plan.overrides.get((peer.namespace, peer.service_account), rate)
            if rate is not None:
                buckets.append(((service, who), rate))
        if not buckets:
            return None
        refused = self.limiter.admit(buckets, self.clock())
        return None if refused is None else Limited(plan.policy, refused)
