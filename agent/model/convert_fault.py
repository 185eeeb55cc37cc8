"""Reader for policy.tulle.io/v1alpha1 HTTPFault with Istio's validation of
HTTPFaultInjection: a delay or an abort (or both); ``fixedDelay`` required and at least
1ms; exactly one of ``httpStatus`` (200-599) and ``grpcStatus`` (a gRPC status name);
``percentage.value`` from 0 to 100."""

from __future__ import annotations

from datetime import timedelta

from agent.model.fault import (
    GRPC_CODES,
    FaultAbort,
    FaultDelay,
    HTTPFault,
    HTTPFaultSpec,
    Percent,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader

MIN_DELAY = timedelta(milliseconds=1)


def read_http_fault(r: Reader, metadata: ObjectMeta) -> HTTPFault:
    return HTTPFault(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> HTTPFaultSpec:
    spec = HTTPFaultSpec(delay=r.obj("delay", _read_delay), abort=r.obj("abort", _read_abort))
    if spec.delay is None and spec.abort is None:
        r.fail(None, "a fault needs a delay, an abort or both")
    return spec


def _read_delay(r: Reader) -> FaultDelay:
    fixed = r.duration("fixedDelay")
    if fixed is None:
        r.fail("fixedDelay", "required")
    if fixed < MIN_DELAY:
        r.fail("fixedDelay", "must be at least 1ms")
    return FaultDelay(fixed_delay=fixed, percentage=r.obj("percentage", _read_percent))


def _read_abort(r: Reader) -> FaultAbort:
    http = r.integer("httpStatus", minimum=200, maximum=599)
    grpc = r.string("grpcStatus")
    if grpc is not None and grpc not in GRPC_CODES:
        r.fail("grpcStatus", f"unknown gRPC status {grpc!r} (supported: {', '.join(GRPC_CODES)})")
    if (http is None) == (grpc is None):
        r.fail(None, "exactly one of httpStatus and grpcStatus is required")
    return FaultAbort(http, grpc, r.obj("percentage", _read_percent))


def _read_percent(r: Reader) -> Percent:
    value = r.data.get("value")
    if value is None:
        return Percent(0.0)  # Istio's proto: an unset double reads 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        r.fail("value", f"expected number, got {type(value).__name__}")
    if not 0 <= value <= 100:
        r.fail("value", "must be between 0 and 100")
    return Percent(float(value))
