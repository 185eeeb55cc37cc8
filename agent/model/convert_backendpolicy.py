"""Reader for policy.tulle.io/v1alpha1 BackendTrafficPolicy: GEP-713 targetRefs (Services
only, 1-16, no repeats) and Istio's connectionPool / outlierDetection fields with Istio's
bounds (percentages 0-100, durations at least 1ms), and GEP-3388's retryConstraint with its
bounds (percent 0-100, intervals 1s to 1h, count at least 1)."""

from __future__ import annotations

from datetime import timedelta

from agent.model.backendpolicy import (
    BackendTrafficPolicy,
    BackendTrafficPolicySpec,
    BudgetDetails,
    ConnectionPoolSettings,
    HTTPSettings,
    OutlierDetection,
    PolicyTargetReference,
    RequestRate,
    RetryConstraint,
    TCPSettings,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import dns1035_label

MAX_TARGET_REFS = 16  # GEP-713's bound
INT32_MAX = 2**31 - 1  # Istio's int32 fields
UINT32_MAX = 2**32 - 1  # and its UInt32Value ones
MIN_DURATION = timedelta(milliseconds=1)
BUDGET_INTERVALS = (timedelta(seconds=1), timedelta(hours=1))  # GEP-3388's bounds


def read_backend_traffic_policy(r: Reader, metadata: ObjectMeta) -> BackendTrafficPolicy:
    return BackendTrafficPolicy(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> BackendTrafficPolicySpec:
    refs = r.objects("targetRefs", _read_target, min_items=1, max_items=MAX_TARGET_REFS)
    r.check_unique("targetRefs", [(t.group, t.kind, t.name) for t in refs])
    return BackendTrafficPolicySpec(
        target_refs=refs,
        connection_pool=r.obj("connectionPool", _read_pool),
        outlier_detection=r.obj("outlierDetection", _read_outlier),
        retry_constraint=r.obj("retryConstraint", _read_retry_constraint),
    )


def _read_target(r: Reader) -> PolicyTargetReference:
    group = r.string("group", "")
    kind = r.string("kind", REQUIRED)
    if group not in ("", "core") or kind != "Service":
        shown = f"{group}/{kind}" if group else kind
        r.fail("kind", f"unsupported target {shown}: a BackendTrafficPolicy targets Services "
                       '(group "", kind Service)')
    return PolicyTargetReference("", kind, r.string("name", REQUIRED, check=dns1035_label))


def _read_pool(r: Reader) -> ConnectionPoolSettings:
    return ConnectionPoolSettings(tcp=r.obj("tcp", _read_tcp), http=r.obj("http", _read_http))


def _read_tcp(r: Reader) -> TCPSettings:
    return TCPSettings(max_connections=r.integer("maxConnections", minimum=0, maximum=INT32_MAX))


def _read_http(r: Reader) -> HTTPSettings:
    def limit(key: str) -> int | None:
        return r.integer(key, minimum=0, maximum=INT32_MAX)

    return HTTPSettings(
        http1_max_pending_requests=limit("http1MaxPendingRequests"),
        http2_max_requests=limit("http2MaxRequests"),
        max_requests_per_connection=limit("maxRequestsPerConnection"),
        max_retries=limit("maxRetries"),
    )


def _read_outlier(r: Reader) -> OutlierDetection:
    def duration(key: str) -> timedelta | None:
        value = r.duration(key)
        if value is not None and value < MIN_DURATION:
            r.fail(key, "must be at least 1ms")
        return value

    def percent(key: str) -> int | None:
        return r.integer(key, minimum=0, maximum=100)

    return OutlierDetection(
        consecutive_5xx_errors=r.integer("consecutive5xxErrors", minimum=0, maximum=UINT32_MAX),
        consecutive_gateway_errors=r.integer(
            "consecutiveGatewayErrors", minimum=0, maximum=UINT32_MAX
        ),
        interval=duration("interval"),
        base_ejection_time=duration("baseEjectionTime"),
        max_ejection_percent=percent("maxEjectionPercent"),
        min_health_percent=percent("minHealthPercent"),
    )


def _budget_interval(r: Reader, key: str) -> timedelta | None:
    value = r.duration(key)
    low, high = BUDGET_INTERVALS
    if value is not None and not low <= value <= high:
        r.fail(key, "must be between 1s and 1h (GEP-3388)")
    return value


def _read_retry_constraint(r: Reader) -> RetryConstraint:
    return RetryConstraint(
        budget=r.obj("budget", _read_budget), min_retry_rate=r.obj("minRetryRate", _read_rate)
    )


def _read_budget(r: Reader) -> BudgetDetails:
    return BudgetDetails(
        percent=r.integer("percent", minimum=0, maximum=100),
        interval=_budget_interval(r, "interval"),
    )


def _read_rate(r: Reader) -> RequestRate:
    return RequestRate(
        count=r.integer("count", minimum=1, maximum=INT32_MAX),
        interval=_budget_interval(r, "interval"),
    )
