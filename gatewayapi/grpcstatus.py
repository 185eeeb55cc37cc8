"""gRPC errors for what the proxy answers itself, as trailers-only responses (pure).

gRPC over HTTP/2 ("Responses"): an error without a message body is one HEADERS frame with
END_STREAM carrying ``:status 200``, ``content-type: application/grpc``, ``grpc-status`` and
``grpc-message`` (percent-encoded UTF-8). The codes (grpc/grpc doc/statuscodes.md):

- no route matches: UNIMPLEMENTED (12), as a server answers an unknown method (and as
  gRPC's "HTTP to gRPC Status Code Mapping" reads a 404);
- no valid backend (GRPCRouteRule.backendRefs: "MUST receive an UNAVAILABLE status"), no
  endpoint, an upstream connection failure: UNAVAILABLE (14);
- a route or backend timeout: DEADLINE_EXCEEDED (4);
- any other HTTP error the proxy would send: the mapping of grpc/grpc
  doc/http-grpc-status-mapping.md (400 INTERNAL, 401 UNAUTHENTICATED, 403
  PERMISSION_DENIED, 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, else UNKNOWN).
"""

from __future__ import annotations

from enum import IntEnum
from urllib.parse import quote

from gatewayapi.headers import Headers
from gatewayapi.types import Response


class GrpcStatus(IntEnum):
    OK = 0
    UNKNOWN = 2
    DEADLINE_EXCEEDED = 4
    PERMISSION_DENIED = 7
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


_FROM_HTTP = {
    400: GrpcStatus.INTERNAL,
    401: GrpcStatus.UNAUTHENTICATED,
    403: GrpcStatus.PERMISSION_DENIED,
    404: GrpcStatus.UNIMPLEMENTED,
    429: GrpcStatus.UNAVAILABLE,
    502: GrpcStatus.UNAVAILABLE,
    503: GrpcStatus.UNAVAILABLE,
    504: GrpcStatus.UNAVAILABLE,
}


def status_for_http(status: int) -> GrpcStatus:
    """gRPC's mapping of an HTTP status a gRPC client receives."""
    return _FROM_HTTP.get(status, GrpcStatus.UNKNOWN)


def encode_message(text: str) -> str:
    """grpc-message: percent-encoded UTF-8, leaving printable ASCII but "%" as is."""
    return quote(text, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")


def grpc_error(code: GrpcStatus, message: str) -> Response:
    """A trailers-only gRPC response: HTTP 200, no body, the status in the headers."""
    headers = Headers(
        (
            ("content-type", "application/grpc"),
            ("grpc-status", str(int(code))),
            ("grpc-message", encode_message(message)),
        )
    )
    return Response(200, headers, b"")


def as_grpc(response: Response, code: GrpcStatus | None = None, message: str = "") -> Response:
    """``response`` (an HTTP error the proxy made) as the gRPC error a gRPC client can
    read: ``code``, or gRPC's mapping of its HTTP status. Non-errors pass unchanged."""
    if response.status < 400 and code is None:
        return response
    chosen = code if code is not None else status_for_http(response.status)
    text = message or response.body.decode("utf-8", "replace").strip()
    return grpc_error(chosen, text)
