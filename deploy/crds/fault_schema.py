"""The HTTPFault schema (policy.tulle.io/v1alpha1): Istio's HTTPFaultInjection fields (every
field Tulle's model reads, ``agent/model/convert_fault.py``); our descriptions. Istio's rules
a schema cannot say (a delay or an abort; exactly one of httpStatus and grpcStatus) are left
to the typed admission after it."""

from __future__ import annotations

from backendpolicy_schema import DURATION, GROUP
from schema_parts import Schema, integer, obj, string

GRPC_CODES = [
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]

__all__ = ["GROUP", "HTTP_FAULT"]


def _percentage(what: str) -> Schema:
    return obj(
        f"The share of requests {what}; left out, every request.",
        {"value": {"description": "Percent, 0 to 100 (fractions allowed).", "type": "number",
                   "minimum": 0, "maximum": 100}},
    )


HTTP_FAULT: Schema = obj(
    "Fault injection for the HTTPRoute rules whose ExtensionRef filter names it (group "
    "policy.tulle.io, kind HTTPFault), with Istio's HTTPFaultInjection fields. The delay "
    "comes first, then the abort; an aborted request's flow has drop reason FAULT_ABORT.",
    {
        "spec": obj(
            "The faults.",
            {
                "delay": obj(
                    "Hold requests before they go on.",
                    {
                        "fixedDelay": string("How long. A Gateway API duration, at least 1ms.",
                                             pattern=DURATION),
                        "percentage": _percentage("delayed"),
                    },
                    ("fixedDelay",),
                ),
                "abort": obj(
                    "Answer requests without reaching the backend.",
                    {
                        "httpStatus": integer("The HTTP status to answer.", 200, 599,
                                              format="int32"),
                        "grpcStatus": string(
                            "The gRPC status to answer gRPC requests with (HTTP 200, "
                            "grpc-status); other requests get its HTTP mapping.",
                            enum=GRPC_CODES),
                        "percentage": _percentage("aborted"),
                    },
                ),
            },
        ),
    },
    ("spec",),
)
