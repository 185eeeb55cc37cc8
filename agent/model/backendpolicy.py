"""policy.tulle.io/v1alpha1 BackendTrafficPolicy: circuit breaking and outlier detection for
the Services it targets (GEP-713 ``targetRefs``), with the fields of Istio's DestinationRule
``trafficPolicy.connectionPool`` and ``trafficPolicy.outlierDetection``, so its users can
carry their numbers over, and Gateway API's GEP-3388 ``retryConstraint`` (a retry budget,
as in the experimental gateway.networking.x-k8s.io BackendTrafficPolicy).

Integers left out (or 0 where Istio's proto reads 0 as unset) take Istio's defaults, applied
by the waypoint (``l7proxy/resilience/params.py``). What each field does there:
``l7proxy/resilience/limits.py`` and ``outlier.py``. Which policy wins for a Service:
``gatewayapi/backendpolicy.py`` (the oldest; the others report a conflict). Istio fields
without an effect here are refused by name with the reason (``convert_backendpolicy.REFUSED``;
the table: ``l7proxy/resilience/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import ClassVar

from agent.model.meta import ObjectMeta


@dataclass(frozen=True, slots=True)
class PolicyTargetReference:
    """GEP-713's LocalPolicyTargetReference: an object of the policy's namespace."""

    group: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class TCPSettings:
    max_connections: int | None = None


@dataclass(frozen=True, slots=True)
class HTTPSettings:
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None


@dataclass(frozen=True, slots=True)
class ConnectionPoolSettings:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    interval: timedelta | None = None
    base_ejection_time: timedelta | None = None
    max_ejection_percent: int | None = None
    min_health_percent: int | None = None
    # Envoy's split of local-origin errors (no answer: connect failure, reset, timeout)
    # from the upstream's answers; the threshold counts only when the split is on.
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: int | None = None


class SimpleLB(StrEnum):
    """Istio's ``loadBalancer.simple`` values the waypoint implements (``l7proxy/resilience/
    balance.py``). UNSPECIFIED: the waypoint's own, P2C over peak-EWMA latency."""

    UNSPECIFIED = "UNSPECIFIED"
    LEAST_REQUEST = "LEAST_REQUEST"  # Envoy's: the fewer requests in flight of two at random
    ROUND_ROBIN = "ROUND_ROBIN"
    RANDOM = "RANDOM"


@dataclass(frozen=True, slots=True)
class LoadBalancerSettings:
    """Istio's ``trafficPolicy.loadBalancer``, its ``simple`` form only."""

    simple: SimpleLB | None = None


@dataclass(frozen=True, slots=True)
class BudgetDetails:
    """GEP-3388 ``retryConstraint.budget``: retries may be at most ``percent`` of the
    requests of the last ``interval`` (defaults 20% over 10s, applied by the waypoint)."""

    percent: int | None = None
    interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RequestRate:
    """GEP-3388 ``RequestRate``: ``count`` per ``interval`` (default 10 per 1s)."""

    count: int | None = None
    interval: timedelta | None = None


@dataclass(frozen=True, slots=True)
class RetryConstraint:
    """GEP-3388 retry budget: a cap on retries to the Service relative to its traffic, with
    a floor (``min_retry_rate``) so a quiet Service can still retry."""

    budget: BudgetDetails | None = None
    min_retry_rate: RequestRate | None = None


@dataclass(frozen=True, slots=True)
class BackendTrafficPolicySpec:
    target_refs: tuple[PolicyTargetReference, ...] = ()
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    retry_constraint: RetryConstraint | None = None
    load_balancer: LoadBalancerSettings | None = None


@dataclass(frozen=True, slots=True)
class BackendTrafficPolicy:
    kind: ClassVar[str] = "BackendTrafficPolicy"
    metadata: ObjectMeta
    spec: BackendTrafficPolicySpec = field(default_factory=BackendTrafficPolicySpec)
