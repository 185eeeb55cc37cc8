"""Fault injection (an HTTPRoute ExtensionRef filter naming a policy.tulle.io HTTPFault,
Istio's HTTPFaultInjection fields) as pure policy: whether a request is delayed, aborted or
both, from uniform draws the caller passes in (the waypoint's seedable RNG).

Each of the delay and the abort fires on its own draw, ``draw * 100 < percentage``, so over
n requests the count that fires is Binomial(n, p). The delay comes first, then the abort
(Envoy's fault filter order): a request both delayed and aborted waits, then gets the abort.

An abort with ``grpcStatus`` answers a gRPC request (content-type ``application/grpc...``)
as gRPC does: HTTP 200 with ``grpc-status`` in a headers-only response. A request that is
not gRPC gets the HTTP status that gRPC's HTTP mapping gives that code (UNAVAILABLE: 503),
as Envoy's local replies do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.model.fault import GRPC_CODES, HTTPFault, Percent
from gatewayapi.headers import Headers
from gatewayapi.types import Request, Response

FAULT_BODY = b"fault filter abort\n"
"""Envoy's body for an injected abort."""

GRPC_TO_HTTP = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
    "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500,
    "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}
"""google.rpc code to HTTP status (googleapis/google/rpc/code.proto)."""


def _percent(p: Percent | None) -> float:
    return 100.0 if p is None else p.value


@dataclass(frozen=True, slots=True)
class Fault:
    """A compiled HTTPFault: seconds of delay and the abort, each with its percentage."""

    name: str
    """namespace/name of the HTTPFault, for flows and status."""
    delay: float | None = None
    delay_percent: float = 100.0
    http_status: int | None = None
    grpc_status: str | None = None
    abort_percent: float = 100.0

    @classmethod
    def of(cls, fault: HTTPFault) -> Fault:
        spec, meta = fault.spec, fault.metadata
        name = f"{meta.namespace}/{meta.name}"
        delay = spec.delay
        abort = spec.abort
        return cls(
            name=name,
            delay=delay.fixed_delay.total_seconds() if delay else None,
            delay_percent=_percent(delay.percentage) if delay else 0.0,
            http_status=abort.http_status if abort else None,
            grpc_status=abort.grpc_status if abort else None,
            abort_percent=_percent(abort.percentage) if abort else 0.0,
        )

    @property
    def aborts(self) -> bool:
        return self.http_status is not None or self.grpc_status is not None

    def decide(self, rng: Callable[[], float]) -> tuple[float, bool]:
        """(seconds to wait, whether to abort) for one request. A draw is taken for each
        of the delay and the abort that the fault has, in that order."""
        wait = 0.0
        if self.delay is not None and rng() * 100 < self.delay_percent:
            wait = self.delay
        aborted = self.aborts and rng() * 100 < self.abort_percent
        return wait, aborted

    def response(self, request: Request) -> Response:
        """The abort's answer to ``request``."""
        grpc = self.grpc_status
        if grpc is not None and _is_grpc(request):
            headers = Headers((
                ("content-type", "application/grpc"),
                ("grpc-status", str(GRPC_CODES.index(grpc))),
                ("grpc-message", "fault filter abort"),
                ("content-length", "0"),
            ))
            return Response(200, headers)
        status = self.http_status if self.http_status is not None else GRPC_TO_HTTP[grpc or ""]
        headers = Headers(
            (("content-type", "text/plain"), ("content-length", str(len(FAULT_BODY))))
        )
        return Response(status, headers, FAULT_BODY)


def _is_grpc(request: Request) -> bool:
    return any(
        n.lower() == "content-type" and v.startswith("application/grpc")
        for n, v in request.headers
    )
