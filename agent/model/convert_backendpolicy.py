"""Reader for policy.tulle.io/v1alpha1 BackendTrafficPolicy: GEP-713 targetRefs (Services
only, 1-16, no repeats) and Istio's connectionPool / outlierDetection fields with Istio's
bounds (percentages 0-100, durations at least 1ms), and GEP-3388's retryConstraint with its
bounds (percent 0-100, intervals 1s to 1h, count at least 1). Istio's fields the waypoint
does not enforce are refused by name with the reason (``REFUSED``), never ignored: a policy
would otherwise be Accepted and do less than it says."""

from __future__ import annotations

from datetime import timedelta

from agent.model.backendpolicy import (
    BackendTrafficPolicy,
    BackendTrafficPolicySpec,
    BudgetDetails,
    ConnectionPoolSettings,
    HTTPSettings,
    LoadBalancerSettings,
    OutlierDetection,
    PolicyTargetReference,
    RequestRate,
    RetryConstraint,
    SimpleLB,
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

_OWN_LIMITS = "the waypoint's own limits apply to every backend (l7proxy Limits)"
REFUSED: dict[str, dict[str, str]] = {
    # where -> Istio field -> why Tulle refuses it (l7proxy/resilience/README.md's table)
    "spec": {
        "tls": "the upstream hop's TLS is mTLS (PeerAuthentication), not per-policy",
        "portLevelSettings": "a policy applies to every port of its Service; target a "
                             "Service per port set instead",
        "tunnel": "no HTTP CONNECT tunnelling to backends",
        "proxyProtocol": "the waypoint does not send PROXY protocol headers",
    },
    "tcp": {
        "connectTimeout": f"not per Service yet: {_OWN_LIMITS} (connect 5 s)",
        "tcpKeepalive": f"not per Service: {_OWN_LIMITS}",
        "maxConnectionDuration": "backend connections are not aged out",
        "idleTimeout": f"not per Service yet: {_OWN_LIMITS}",
    },
    "http": {
        "idleTimeout": f"not per Service yet: {_OWN_LIMITS}",
        "h2UpgradePolicy": "the upstream protocol follows the Service port's appProtocol",
        "useClientProtocol": "the upstream protocol follows the Service port's appProtocol",
        "maxConcurrentStreams": f"not per Service: {_OWN_LIMITS}",
    },
    "outlierDetection": {
        "consecutiveErrors": "deprecated in Istio: use consecutive5xxErrors",
    },
    "loadBalancer": {
        "consistentHash": "no hash-based choice: ClientIP session affinity on the Service is "
                          "kept in the kernel for L4 traffic only",
        "localityLbSetting": "the waypoint does not read topology (zones, regions)",
        "warmupDurationSecs": "no slow start: a new endpoint starts level with the best one "
                              "(P2C) or takes its turn at once",
        "warmup": "no slow start (as warmupDurationSecs)",
    },
}
SIMPLE_ALIASES = {"LEAST_CONN": SimpleLB.LEAST_REQUEST}  # Istio's deprecated name


def _refuse_unsupported(r: Reader, where: str) -> None:
    for key, why in REFUSED[where].items():
        if key in r.data:
            r.fail(key, f"is not supported: {why}")


def read_backend_traffic_policy(r: Reader, metadata: ObjectMeta) -> BackendTrafficPolicy:
    return BackendTrafficPolicy(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> BackendTrafficPolicySpec:
    _refuse_unsupported(r, "spec")
    refs = r.objects("targetRefs", _read_target, min_items=1, max_items=MAX_TARGET_REFS)
    r.check_unique("targetRefs", [(t.group, t.kind, t.name) for t in refs])
    return BackendTrafficPolicySpec(
        target_refs=refs,
        connection_pool=r.obj("connectionPool", _read_pool),
        outlier_detection=r.obj("outlierDetection", _read_outlier),
        retry_constraint=r.obj("retryConstraint", _read_retry_constraint),
        load_balancer=r.obj("loadBalancer", _read_load_balancer),
    )


def _read_load_balancer(r: Reader) -> LoadBalancerSettings:
    _refuse_unsupported(r, "loadBalancer")
    simple = r.data.get("simple")
    if simple == "PASSTHROUGH":
        r.fail("simple", "PASSTHROUGH is not supported: the waypoint always chooses an "
                         "endpoint of the Service (the original destination is its ClusterIP)")
    if isinstance(simple, str) and simple in SIMPLE_ALIASES:
        return LoadBalancerSettings(SIMPLE_ALIASES[simple])
    return LoadBalancerSettings(r.enum("simple", SimpleLB))


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
    _refuse_unsupported(r, "tcp")
    return TCPSettings(max_connections=r.integer("maxConnections", minimum=0, maximum=INT32_MAX))


def _read_http(r: Reader) -> HTTPSettings:
    _refuse_unsupported(r, "http")

    def limit(key: str) -> int | None:
        return r.integer(key, minimum=0, maximum=INT32_MAX)

    return HTTPSettings(
        http1_max_pending_requests=limit("http1MaxPendingRequests"),
        http2_max_requests=limit("http2MaxRequests"),
        max_requests_per_connection=limit("maxRequestsPerConnection"),
        max_retries=limit("maxRetries"),
    )


def _read_outlier(r: Reader) -> OutlierDetection:
    _refuse_unsupported(r, "outlierDetection")
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
        split_external_local_origin_errors=r.boolean("splitExternalLocalOriginErrors"),
        consecutive_local_origin_failures=r.integer(
            "consecutiveLocalOriginFailures", minimum=0, maximum=UINT32_MAX
        ),
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
