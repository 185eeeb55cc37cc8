"""Every Istio DestinationRule connectionPool / outlierDetection field (and trafficPolicy
sibling) that BackendTrafficPolicy does not enforce is refused by name with its reason,
never ignored; the local-origin fields are read and written back. Linkerd's HTTPLocalRate
LimitPolicy ``targetRef`` (a Server) is refused likewise."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.backendpolicy import (
    BackendTrafficPolicy,
    LoadBalancerSettings,
    OutlierDetection,
    SimpleLB,
)
from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.convert_backendpolicy import REFUSED

BASE: dict[str, Any] = {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "BackendTrafficPolicy",
                        "metadata": {"name": "echo", "namespace": "shop"},
                        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "echo"}]}}
PATHS = {"spec": (), "tcp": ("connectionPool", "tcp"), "http": ("connectionPool", "http"),
         "outlierDetection": ("outlierDetection",), "loadBalancer": ("loadBalancer",)}
CASES = [(where, field) for where, fields in REFUSED.items() for field in fields]


def with_field(where: str, field: str, value: Any) -> dict[str, Any]:
    spec: dict[str, Any] = dict(BASE["spec"])
    node = spec
    for key in PATHS[where]:
        node = node.setdefault(key, {})
    node[field] = value
    return {**BASE, "spec": spec}


@pytest.mark.parametrize(("where", "field"), CASES, ids=[f"{w}.{f}" for w, f in CASES])
def test_every_unsupported_field_is_refused_by_name_with_its_reason(where: str, field: str) -> None:
    with pytest.raises(ConversionError) as err:
        from_dict(with_field(where, field, {"any": "value"}))
    path = ".".join(("spec", *PATHS[where], field))
    assert path in str(err.value) and "is not supported: " + REFUSED[where][field] in str(err.value)


def test_the_istio_fields_refused_cover_what_istio_has_that_is_not_read() -> None:
    """Istio's ConnectionPoolSettings and OutlierDetection fields (v1 API) each either read
    or refused: a new one appears in neither only if this list is left behind."""
    read = {"tcp": {"maxConnections"},
            "http": {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
                     "maxRetries"},
            "outlierDetection": {"consecutive5xxErrors", "consecutiveGatewayErrors", "interval",
                                 "baseEjectionTime", "maxEjectionPercent", "minHealthPercent",
                                 "splitExternalLocalOriginErrors",
                                 "consecutiveLocalOriginFailures"},
            "loadBalancer": {"simple"}}
    istio = {"tcp": {"maxConnections", "connectTimeout", "tcpKeepalive",
                     "maxConnectionDuration", "idleTimeout"},
             "http": {"http1MaxPendingRequests", "http2MaxRequests", "maxRequestsPerConnection",
                      "maxRetries", "idleTimeout", "h2UpgradePolicy", "useClientProtocol",
                      "maxConcurrentStreams"},
             "outlierDetection": {"splitExternalLocalOriginErrors",
                                  "consecutiveLocalOriginFailures", "consecutiveGatewayErrors",
                                  "consecutive5xxErrors", "interval", "baseEjectionTime",
                                  "maxEjectionPercent", "minHealthPercent", "consecutiveErrors"},
             "loadBalancer": {"simple", "consistentHash", "localityLbSetting",
                              "warmupDurationSecs", "warmup"}}
    for where, fields in istio.items():
        assert fields == read[where] | set(REFUSED[where]), where


def test_local_origin_fields_are_read_and_written_back() -> None:
    doc = with_field("outlierDetection", "splitExternalLocalOriginErrors", True)
    doc["spec"]["outlierDetection"]["consecutiveLocalOriginFailures"] = 3
    btp = from_dict(doc)
    assert isinstance(btp, BackendTrafficPolicy)
    assert btp.spec.outlier_detection == OutlierDetection(
        split_external_local_origin_errors=True, consecutive_local_origin_failures=3)
    assert to_dict(btp)["spec"]["outlierDetection"] == doc["spec"]["outlierDetection"]
    for bad, message in (({"splitExternalLocalOriginErrors": "yes"}, "expected boolean"),
                         ({"consecutiveLocalOriginFailures": -1}, "consecutiveLocalOriginFailures")):
        with pytest.raises(ConversionError, match=message):
            from_dict({**BASE, "spec": {**BASE["spec"], "outlierDetection": bad}})


def test_linkerds_server_target_is_refused_with_what_to_write_instead() -> None:
    doc = {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
           "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web"},
                    "total": {"requestsPerSecond": 10}}}
    with pytest.raises(ConversionError, match=r"spec\.targetRef.*not supported.*targetRefs"):
        from_dict(doc)


@pytest.mark.parametrize(("simple", "read"), [
    ("ROUND_ROBIN", SimpleLB.ROUND_ROBIN), ("RANDOM", SimpleLB.RANDOM),
    ("LEAST_REQUEST", SimpleLB.LEAST_REQUEST), ("LEAST_CONN", SimpleLB.LEAST_REQUEST),
    ("UNSPECIFIED", SimpleLB.UNSPECIFIED),
])
def test_a_simple_balancer_is_read(simple: str, read: SimpleLB) -> None:
    btp = from_dict({**BASE, "spec": {**BASE["spec"], "loadBalancer": {"simple": simple}}})
    assert isinstance(btp, BackendTrafficPolicy)
    assert btp.spec.load_balancer == LoadBalancerSettings(read)


@pytest.mark.parametrize(("simple", "message"), [
    ("PASSTHROUGH", "PASSTHROUGH is not supported: the waypoint always chooses"),
    ("WEIGHTED", "unsupported value"),
])
def test_other_balancers_are_refused(simple: str, message: str) -> None:
    with pytest.raises(ConversionError, match=r"spec\.loadBalancer\.simple.*" + message):
        from_dict({**BASE, "spec": {**BASE["spec"], "loadBalancer": {"simple": simple}}})
