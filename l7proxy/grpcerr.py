"""gRPC clients get gRPC errors: what the waypoint answers a gRPC request itself (a
timeout, an upstream failure, a policy denial, a rate limit) goes out as a trailers-only
response (``gatewayapi/grpcstatus.py`` says the codes and cites gRPC's mapping), and the
grpc-status sent is read back for the request's flow."""

from __future__ import annotations

from gatewayapi.grpcstatus import GrpcStatus, as_grpc
from gatewayapi.headers import Headers
from gatewayapi.types import Response
from l7proxy.exchange import RawHeaders

_BY_STATUS = {504: GrpcStatus.DEADLINE_EXCEEDED}
"""The waypoint's own 504 is always a route or backend timeout (forward.py)."""


def grpc_local(status: int, headers: RawHeaders, body: bytes) -> tuple[int, RawHeaders, bytes]:
    """A local HTTP answer as the gRPC error a gRPC client reads; answers that already are
    gRPC (``grpc-status`` set) or are not errors pass unchanged."""
    if status < 400 or any(n.lower() == b"grpc-status" for n, _ in headers):
        return status, headers, body
    response = as_grpc(Response(status, Headers.from_raw(headers), body), _BY_STATUS.get(status))
    return response.status, response.headers.raw(), response.body


def grpc_status_of(headers: RawHeaders) -> int | None:
    """The grpc-status among ``headers``, or None (absent or not a number)."""
    for name, value in headers:
        if name.lower() == b"grpc-status":
            return int(value) if value.isdigit() else None
    return None
