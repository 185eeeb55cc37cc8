"""A BackendTrafficPolicy's meaning to the waypoint: Istio's defaults for what it leaves out
(0 as unset for pool limits), and which policy a Service gets, from a config file too."""

from __future__ import annotations

from l7proxy.config import load_config_text
from l7proxy.resilience.budget import BudgetParams
from l7proxy.resilience.limits import UNLIMITED, PoolParams
from l7proxy.resilience.outlier import OutlierParams
from l7proxy.resilience.params import BackendParams
from l7proxy.testing import service

POLICIES = """
---
apiVersion: policy.tulle.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: older, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{kind: Service, name: web}]
  connectionPool:
    tcp: {maxConnections: 2}
    http: {http1MaxPendingRequests: 0, maxRequestsPerConnection: 1}
  outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, interval: 2s}
---
apiVersion: policy.tulle.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: newer, namespace: default, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  targetRefs: [{kind: Service, name: web}, {kind: Service, name: api}]
  outlierDetection: {}
---
apiVersion: policy.tulle.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: budget, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{kind: Service, name: shop}]
  retryConstraint: {budget: {interval: 30s}}
---
apiVersion: policy.tulle.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: floor, namespace: default, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  targetRefs: [{kind: Service, name: cart}]
  retryConstraint: {budget: {percent: 5}, minRetryRate: {count: 2, interval: 5s}}
"""


def test_a_config_file_gives_each_service_its_policys_parameters() -> None:
    loaded = load_config_text(service("web") + service("api") + POLICIES)
    assert loaded.backend_params[("default", "web")] == BackendParams(
        pool=PoolParams(
            max_connections=2,
            max_pending=UNLIMITED,  # Istio reads 0 as unset
            max_requests=UNLIMITED,
            max_requests_per_connection=1,
            max_retries=UNLIMITED,
        ),
        outlier=OutlierParams(consecutive_5xx=0, consecutive_gateway=3, interval=2.0),
    )
    # the newer policy lost web to the older one, and has api to itself: Istio's defaults
    assert loaded.backend_params[("default", "api")] == BackendParams(outlier=OutlierParams())


def test_a_service_without_a_policy_has_no_parameters() -> None:
    assert load_config_text(service("web")).backend_params == {}


def test_a_retry_constraint_takes_the_geps_defaults_for_what_it_leaves_out() -> None:
    text = service("web") + service("api") + service("shop") + service("cart") + POLICIES
    params = load_config_text(text).backend_params
    assert params[("default", "shop")] == BackendParams(budget=BudgetParams(interval=30.0))
    assert params[("default", "cart")].budget == BudgetParams(
        percent=5, interval=10.0, min_count=2, min_interval=5.0
    )
    assert params[("default", "api")].budget is None  # no retryConstraint: no budget


def test_local_origin_fields_reach_the_detector() -> None:
    from agent.model.backendpolicy import BackendTrafficPolicySpec, OutlierDetection
    from l7proxy.resilience.params import backend_params

    split = backend_params(BackendTrafficPolicySpec(outlier_detection=OutlierDetection(
        split_external_local_origin_errors=True, consecutive_local_origin_failures=2)))
    assert split.outlier is not None
    assert (split.outlier.split_local_origin, split.outlier.consecutive_local_origin) == (True, 2)
    default = backend_params(BackendTrafficPolicySpec(outlier_detection=OutlierDetection()))
    assert default.outlier == OutlierParams()  # Istio's: no split, 5 when split
    assert (default.outlier.split_local_origin, default.outlier.consecutive_local_origin) == (
        False, 5)


def test_a_simple_balancer_reaches_the_backends_choice() -> None:
    from agent.model.backendpolicy import (
        BackendTrafficPolicySpec,
        LoadBalancerSettings,
        SimpleLB,
    )
    from l7proxy.resilience.params import backend_params
    from l7proxy.resilience.state import Resilience

    assert backend_params(BackendTrafficPolicySpec()).balancer == ""
    unspecified = LoadBalancerSettings(SimpleLB.UNSPECIFIED)
    assert backend_params(BackendTrafficPolicySpec(load_balancer=unspecified)).balancer == ""
    params = backend_params(BackendTrafficPolicySpec(
        load_balancer=LoadBalancerSettings(SimpleLB.ROUND_ROBIN)))
    assert params.balancer == "ROUND_ROBIN"
    res = Resilience(lambda: 0.0, {("default", "web"): params})
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)]
    target = ("default", "web", 80)
    assert [res.choose(target, eps, 0.0) for _ in range(4)] == [*eps, eps[0]]
