"""How a try toward a backend failed, as the answer the proxy gives: ``Failed`` (a status,
the ``UpstreamError`` the retry policy judges, the flow's drop reason), and
``before_response``, which classifies a failure before any byte of the response reached
the client (GEP-1731: such a failure is retried when the rule has a retry stanza)."""

from __future__ import annotations

from gatewayapi import UpstreamError
from l7proxy.http.response import PROTOCOL_ERROR
from l7proxy.upstream import UpstreamFailure

_DROPPED_ERRORS = {
    UpstreamError.CONNECT_FAILED: "UPSTREAM_CONNECT_FAILED",
    UpstreamError.CONNECT_TIMEOUT: "UPSTREAM_CONNECT_FAILED",
    UpstreamError.REFUSED_STREAM: "UPSTREAM_REFUSED_STREAM",
    UpstreamError.BACKEND_TIMEOUT: "UPSTREAM_TIMEOUT",
    UpstreamError.RESET_BEFORE_RESPONSE: "UPSTREAM_RESET",
    UpstreamError.RESET_AFTER_SEND: "UPSTREAM_RESET",
}


class Failed(Exception):
    """A try ended without a response the client can get: answer ``status``."""

    def __init__(
        self,
        status: int,
        reason: str,
        error: UpstreamError,
        *,
        drop: str = "",
        close: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.close = close
        """The client connection closes after the answer."""
        self.drop = drop or (
            _DROPPED_ERRORS[error]
            if status != 503 or "no endpoints" not in reason
            else ("SERVICE_BACKEND_NOT_FOUND")
        )


def before_response(exc: UpstreamFailure) -> Failed:
    """A try that failed before any byte of its response reached the client: not
    connected (503, ``CONNECT_FAILED``), or connected and then reset, closed or answered
    with a malformed head (``RESET_BEFORE_RESPONSE``: 503 as Envoy answers a "disconnect/
    reset before headers", 502 for a response that is no HTTP). Both are retried."""
    if not exc.sent:
        return Failed(503, str(exc), UpstreamError.CONNECT_FAILED, drop=exc.drop)
    status = 502 if exc.drop == PROTOCOL_ERROR else 503
    return Failed(status, str(exc), UpstreamError.RESET_BEFORE_RESPONSE, drop=exc.drop)
