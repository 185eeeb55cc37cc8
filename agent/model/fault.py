"""policy.tulle.io/v1alpha1 HTTPFault: fault injection for the HTTPRoute rules whose
``ExtensionRef`` filter names it, with the fields of Istio's ``HTTPFaultInjection`` (a
VirtualService's ``http[].fault``), so its users can carry their faults over:

- ``delay``: ``fixedDelay`` before the request goes on, for ``percentage.value`` percent of
  requests;
- ``abort``: answer ``httpStatus`` (or, to gRPC callers, ``grpcStatus``) without reaching
  the backend, for ``percentage.value`` percent of requests.

A left-out ``percentage`` means every request, as Istio's reference says. The waypoint
runs the fault where the filter stands in the rule (``gatewayapi/faults.py``); the delay
comes first, then the abort, as in Envoy's fault filter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar

from agent.model.meta import ObjectMeta

GRPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC status names by code (grpc/doc/statuscodes.md)."""


@dataclass(frozen=True, slots=True)
class Percent:
    """Istio's ``Percent``: 0 to 100, fractions allowed."""

    value: float


@dataclass(frozen=True, slots=True)
class FaultDelay:
    fixed_delay: timedelta
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class FaultAbort:
    """Exactly one of ``http_status`` and ``grpc_status`` (a name from ``GRPC_CODES``)."""

    http_status: int | None = None
    grpc_status: str | None = None
    percentage: Percent | None = None


@dataclass(frozen=True, slots=True)
class HTTPFaultSpec:
    delay: FaultDelay | None = None
    abort: FaultAbort | None = None


@dataclass(frozen=True, slots=True)
class HTTPFault:
    kind: ClassVar[str] = "HTTPFault"
    metadata: ObjectMeta
    spec: HTTPFaultSpec = field(default_factory=HTTPFaultSpec)
