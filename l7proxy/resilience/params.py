"""What a BackendTrafficPolicy's spec means to the waypoint: pool limits and outlier
detection parameters, with Istio's defaults for what the spec leaves out, and the retry
budget, with GEP-3388's."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.model.backendpolicy import (
    BackendTrafficPolicy,
    BackendTrafficPolicySpec,
    RetryConstraint,
    SimpleLB,
)
from agent.model.core import Service
from gatewayapi.backendpolicy import winners
from l7proxy.resilience.budget import BudgetParams
from l7proxy.resilience.limits import UNLIMITED, PoolParams
from l7proxy.resilience.outlier import OutlierParams


@dataclass(frozen=True, slots=True)
class BackendParams:
    """None: no limits / no outlier detection for the backend."""

    pool: PoolParams | None = None
    outlier: OutlierParams | None = None
    budget: BudgetParams | None = None
    balancer: str = ""  # loadBalancer.simple ("": UNSPECIFIED, the peak-EWMA P2C)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _limit(value: int | None) -> int:
    """Istio reads a pool limit of 0 as unset (proto3 int32): the default, unlimited."""
    return value if value else UNLIMITED


def backend_params(spec: BackendTrafficPolicySpec) -> BackendParams:
    pool = None
    if spec.connection_pool is not None:
        tcp, http = spec.connection_pool.tcp, spec.connection_pool.http
        pool = PoolParams(
            max_connections=_limit(tcp.max_connections if tcp else None),
            max_pending=_limit(http.http1_max_pending_requests if http else None),
            max_requests=_limit(http.http2_max_requests if http else None),
            max_requests_per_connection=_or(
                http.max_requests_per_connection if http else None, 0
            ),
            max_retries=_limit(http.max_retries if http else None),
        )
    outlier = None
    od = spec.outlier_detection
    if od is not None:
        d = OutlierParams()
        outlier = OutlierParams(
            consecutive_5xx=_or(od.consecutive_5xx_errors, d.consecutive_5xx),
            consecutive_gateway=_or(od.consecutive_gateway_errors, d.consecutive_gateway),
            interval=od.interval.total_seconds() if od.interval else d.interval,
            base_ejection_time=(
                od.base_ejection_time.total_seconds() if od.base_ejection_time
                else d.base_ejection_time
            ),
            max_ejection_percent=_or(od.max_ejection_percent, d.max_ejection_percent),
            min_health_percent=_or(od.min_health_percent, d.min_health_percent),
            split_local_origin=bool(od.split_external_local_origin_errors),
            consecutive_local_origin=_or(od.consecutive_local_origin_failures,
                                         d.consecutive_local_origin),
        )
    budget = _budget(spec.retry_constraint) if spec.retry_constraint is not None else None
    simple = spec.load_balancer.simple if spec.load_balancer is not None else None
    balancer = "" if simple in (None, SimpleLB.UNSPECIFIED) else str(simple)
    return BackendParams(pool, outlier, budget, balancer)


def _budget(constraint: RetryConstraint) -> BudgetParams:
    d = BudgetParams()
    budget, rate = constraint.budget, constraint.min_retry_rate
    return BudgetParams(
        percent=_or(budget.percent if budget else None, d.percent),
        interval=budget.interval.total_seconds() if budget and budget.interval else d.interval,
        min_count=_or(rate.count if rate else None, d.min_count),
        min_interval=rate.interval.total_seconds() if rate and rate.interval else d.min_interval,
    )


def params_by_service(
    policies: Iterable[BackendTrafficPolicy], services: Iterable[Service]
) -> dict[tuple[str, str], BackendParams]:
    """(namespace, Service) -> the parameters of the policy that applies to it (the oldest
    targeting it: ``gatewayapi.backendpolicy``)."""
    keys = [(s.metadata.namespace, s.metadata.name) for s in services]
    return {key: backend_params(p.spec) for key, p in winners(policies, keys).items()}
