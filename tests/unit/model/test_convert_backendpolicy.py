"""policy.tulle.io/v1alpha1 BackendTrafficPolicy: read, written back, refused by field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.backendpolicy import (
    BackendTrafficPolicy,
    BudgetDetails,
    HTTPSettings,
    OutlierDetection,
    PolicyTargetReference,
    RequestRate,
    RetryConstraint,
    TCPSettings,
)
from agent.model.convert import ConversionError, from_dict, to_dict
from tests.unit.model.helpers import DELETE, edit, error_of

BTP: dict[str, Any] = {
    "apiVersion": "policy.tulle.io/v1alpha1",
    "kind": "BackendTrafficPolicy",
    "metadata": {"name": "echo", "namespace": "shop"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
        "connectionPool": {
            "tcp": {"maxConnections": 10},
            "http": {
                "http1MaxPendingRequests": 1,
                "http2MaxRequests": 100,
                "maxRequestsPerConnection": 1,
                "maxRetries": 3,
            },
        },
        "outlierDetection": {
            "consecutive5xxErrors": 2,
            "consecutiveGatewayErrors": 1,
            "interval": "1s",
            "baseEjectionTime": "30s",
            "maxEjectionPercent": 50,
            "minHealthPercent": 10,
        },
        "retryConstraint": {
            "budget": {"percent": 30, "interval": "20s"},
            "minRetryRate": {"count": 5, "interval": "2s"},
        },
    },
}
WHERE = "BackendTrafficPolicy shop/echo"


def test_reads_istios_fields_and_writes_them_back() -> None:
    btp = from_dict(BTP)
    assert isinstance(btp, BackendTrafficPolicy)
    spec = btp.spec
    assert spec.target_refs == (PolicyTargetReference("", "Service", "echo"),)
    assert spec.connection_pool is not None
    assert spec.connection_pool.tcp == TCPSettings(10)
    assert spec.connection_pool.http == HTTPSettings(1, 100, 1, 3)
    assert spec.outlier_detection == OutlierDetection(
        2, 1, timedelta(seconds=1), timedelta(seconds=30), 50, 10
    )
    assert spec.retry_constraint == RetryConstraint(
        BudgetDetails(30, timedelta(seconds=20)), RequestRate(5, timedelta(seconds=2))
    )
    assert to_dict(btp)["spec"] == BTP["spec"] | {
        "targetRefs": [{"group": "", "kind": "Service", "name": "echo"}]
    }


def test_core_group_is_accepted_as_the_empty_group() -> None:
    btp = from_dict(edit(BTP, "spec.targetRefs[0].group", "core"))
    assert isinstance(btp, BackendTrafficPolicy)
    assert btp.spec.target_refs[0].group == ""


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec", DELETE, "spec: required"),
        ("spec.targetRefs", [], "targetRefs: must have at least 1"),
        ("spec.targetRefs[0].kind", "Gateway", "unsupported target Gateway"),
        ("spec.targetRefs[0].group", "apps", "unsupported target apps/Service"),
        ("spec.targetRefs[0].name", "Not_A_Name", "targetRefs[0].name"),
        ("spec.targetRefs[0].name", DELETE, "targetRefs[0].name: required"),
        ("spec.connectionPool.tcp.maxConnections", -1, "maxConnections"),
        ("spec.connectionPool.http.maxRetries", "3", "maxRetries: expected integer"),
        ("spec.connectionPool.http.http2MaxRequests", 2**31, "http2MaxRequests"),
        ("spec.outlierDetection.maxEjectionPercent", 101, "maxEjectionPercent"),
        ("spec.outlierDetection.minHealthPercent", -1, "minHealthPercent"),
        ("spec.outlierDetection.interval", "0s", "interval: must be at least 1ms"),
        ("spec.outlierDetection.baseEjectionTime", "soon", "baseEjectionTime: invalid duration"),
        ("spec.outlierDetection.consecutive5xxErrors", True, "consecutive5xxErrors"),
        ("spec.retryConstraint.budget.percent", 101, "percent"),
        ("spec.retryConstraint.budget.percent", -1, "percent"),
        ("spec.retryConstraint.budget.interval", "500ms", "interval: must be between 1s and 1h"),
        ("spec.retryConstraint.budget.interval", "2h", "interval: must be between 1s and 1h"),
        ("spec.retryConstraint.budget.interval", "often", "interval: invalid duration"),
        ("spec.retryConstraint.minRetryRate.count", 0, "count"),
        ("spec.retryConstraint.minRetryRate.interval", "0s", "must be between 1s and 1h"),
        ("spec.retryConstraint.budget", "20%", "budget"),
    ],
)
def test_refuses_bad_fields_by_path(path: str, value: object, message: str) -> None:
    error = error_of(edit(BTP, path, value))
    assert WHERE in error
    assert message in error


def test_refuses_a_repeated_target() -> None:
    ref = {"group": "", "kind": "Service", "name": "echo"}
    error = error_of(edit(BTP, "spec.targetRefs", [ref, dict(ref)]))
    assert "targetRefs[1]" in error


def test_refuses_more_than_16_targets() -> None:
    refs = [{"kind": "Service", "name": f"s{i}"} for i in range(17)]
    assert "at most 16" in error_of(edit(BTP, "spec.targetRefs", refs))


@settings(max_examples=60, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "consecutive5xxErrors": st.integers(-5, 2**33),
            "maxEjectionPercent": st.integers(-5, 200),
            "minHealthPercent": st.integers(-5, 200),
            "interval": st.sampled_from(["1ms", "10s", "0ms", "1h", "x", ""]),
        },
    )
)
def test_outlier_fields_are_read_exactly_or_refused(fields: dict[str, Any]) -> None:
    doc = edit(BTP, "spec.outlierDetection", fields)
    try:
        btp = from_dict(doc)
    except ConversionError as exc:
        assert WHERE in str(exc)
        return
    assert isinstance(btp, BackendTrafficPolicy)
    od = btp.spec.outlier_detection
    assert od is not None
    assert to_dict(btp)["spec"]["outlierDetection"] == fields | (
        {"interval": fields["interval"]} if "interval" in fields else {}
    )
    assert 0 <= (od.max_ejection_percent or 0) <= 100


def test_an_empty_retry_constraint_is_read_as_empty() -> None:
    btp = from_dict(edit(BTP, "spec.retryConstraint", {}))
    assert isinstance(btp, BackendTrafficPolicy)
    assert btp.spec.retry_constraint == RetryConstraint()
