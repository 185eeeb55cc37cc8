"""policy.tulle.io/v1alpha1 HTTPFault: Istio's HTTPFaultInjection fields read, written back,
and refused by field with Istio's rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agent.model.convert import from_dict, to_dict
from agent.model.fault import FaultAbort, FaultDelay, HTTPFault, Percent
from tests.unit.model.helpers import DELETE, edit, error_of

FAULT: dict[str, Any] = {
    "apiVersion": "policy.tulle.io/v1alpha1",
    "kind": "HTTPFault",
    "metadata": {"name": "flaky", "namespace": "shop"},
    "spec": {
        "delay": {"fixedDelay": "250ms", "percentage": {"value": 12.5}},
        "abort": {"httpStatus": 503, "percentage": {"value": 50}},
    },
}
WHERE = "HTTPFault shop/flaky"


def test_reads_istios_fields_and_writes_them_back() -> None:
    fault = from_dict(FAULT)
    assert isinstance(fault, HTTPFault)
    assert fault.spec.delay == FaultDelay(timedelta(milliseconds=250), Percent(12.5))
    assert fault.spec.abort == FaultAbort(503, None, Percent(50.0))
    written = to_dict(fault)["spec"]
    assert written["delay"] == FAULT["spec"]["delay"]
    assert written["abort"] == {"httpStatus": 503, "percentage": {"value": 50.0}}


def test_a_grpc_abort_alone() -> None:
    fault = from_dict(edit(edit(FAULT, "spec.delay", DELETE), "spec.abort",
                           {"grpcStatus": "UNAVAILABLE"}))
    assert isinstance(fault, HTTPFault)
    assert fault.spec.delay is None
    assert fault.spec.abort == FaultAbort(None, "UNAVAILABLE", None)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec", DELETE, "spec: required"),
        ("spec", {}, "a fault needs a delay, an abort or both"),
        ("spec.delay.fixedDelay", DELETE, "fixedDelay: required"),
        ("spec.delay.fixedDelay", "0s", "fixedDelay: must be at least 1ms"),
        ("spec.delay.fixedDelay", "soon", "fixedDelay: invalid duration"),
        ("spec.delay.percentage.value", 100.5, "value: must be between 0 and 100"),
        ("spec.delay.percentage.value", -1, "value: must be between 0 and 100"),
        ("spec.delay.percentage.value", "50", "value: expected number"),
        ("spec.delay.percentage.value", True, "value: expected number"),
        ("spec.abort.httpStatus", 199, "httpStatus"),
        ("spec.abort.httpStatus", 600, "httpStatus"),
        ("spec.abort.httpStatus", DELETE, "exactly one of httpStatus and grpcStatus"),
        ("spec.abort.grpcStatus", "UNAVAILABLE", "exactly one of httpStatus and grpcStatus"),
        ("spec.abort.grpcStatus", "BROKEN", "unknown gRPC status 'BROKEN'"),
    ],
)
def test_refuses_bad_fields_by_path(path: str, value: object, message: str) -> None:
    error = error_of(edit(FAULT, path, value))
    assert WHERE in error
    assert message in error
