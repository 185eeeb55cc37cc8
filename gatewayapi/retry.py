"""Timeouts (GEP-1742) and retries (GEP-1731) of a rule, as pure policy.

Retries (HTTPRouteRetry): ``attempts`` counts retries after the first try, and 0 disables
them; a rule with a retry stanza but no ``attempts`` gets one retry. A response is retried
when its status is in ``codes``. Failures before the backend could have processed the
request (connect refused or timed out, HTTP/2 REFUSED_STREAM) are always retried when a
retry stanza is present, and so is a backendRequest timeout (GEP-1731 keeps retry-on-
timeout as the default). A reset after the request was sent is not retried: it may not
be idempotent. Backoff is exponential from ``backoff`` (default 25 ms), capped at ten
times the base, with optional jitter from a draw the caller passes in. No retry may
start once the request timeout would be exceeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from agent.model.httproute import HTTPRouteRetry, HTTPRouteTimeouts
from gatewayapi.types import NO_TIMEOUTS, Timeouts

DEFAULT_BACKOFF = 0.025
DEFAULT_ATTEMPTS = 1
BACKOFF_CAP_FACTOR = 10


class UpstreamError(StrEnum):
    """How a try failed without a response."""

    CONNECT_FAILED = "ConnectFailed"
    CONNECT_TIMEOUT = "ConnectTimeout"
    REFUSED_STREAM = "RefusedStream"
    BACKEND_TIMEOUT = "BackendTimeout"
    RESET_BEFORE_RESPONSE = "ResetBeforeResponse"
    """The request went; the connection or stream failed before a response head came."""
    RESET_AFTER_SEND = "ResetAfterSend"
    """The response had begun (toward the client) when the backend failed."""


RETRYABLE_ERRORS = frozenset(
    {
        UpstreamError.CONNECT_FAILED,
        UpstreamError.CONNECT_TIMEOUT,
        UpstreamError.REFUSED_STREAM,
        UpstreamError.BACKEND_TIMEOUT,
        UpstreamError.RESET_BEFORE_RESPONSE,
    }
)


def _seconds(value: timedelta | None) -> float | None:
    """A GEP-1742 duration as seconds; zero disables the timeout (None)."""
    if value is None or value == timedelta(0):
        return None
    return value.total_seconds()


def compile_timeouts(timeouts: HTTPRouteTimeouts | None) -> Timeouts:
    if timeouts is None:
        return NO_TIMEOUTS
    return Timeouts(
        request=_seconds(timeouts.request), backend_request=_seconds(timeouts.backend_request)
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int
    codes: frozenset[int]
    backoff: float = DEFAULT_BACKOFF

    @classmethod
    def of(cls, retry: HTTPRouteRetry | None) -> RetryPolicy | None:
        """The policy of a rule; None when the rule has no retry stanza or attempts is 0."""
        if retry is None:
            return None
        attempts = DEFAULT_ATTEMPTS if retry.attempts is None else retry.attempts
        if attempts == 0:
            return None
        backoff = retry.backoff.total_seconds() if retry.backoff is not None else DEFAULT_BACKOFF
        return cls(attempts=attempts, codes=frozenset(retry.codes), backoff=backoff)

    def retryable(self, status_or_error: int | UpstreamError) -> bool:
        if isinstance(status_or_error, UpstreamError):
            return status_or_error in RETRYABLE_ERRORS
        return status_or_error in self.codes

    def delay(self, attempt: int, draw: float | None = None) -> float:
        """The wait before retry number ``attempt`` (1 for the first retry): base * 2^(n-1),
        capped at 10 * base. With a ``draw`` in [0, 1) the wait is jittered uniformly
        between the base and that value, so it never drops below the base."""
        base = self.backoff
        ceiling = min(base * (2 ** (attempt - 1)), base * BACKOFF_CAP_FACTOR)
        if draw is None:
            return ceiling
        return base + (ceiling - base) * draw

    def should_retry(
        self,
        attempt: int,
        status_or_error: int | UpstreamError,
        *,
        draw: float | None = None,
        remaining: float | None = None,
    ) -> float | None:
        """After try number ``attempt`` (1 is the initial request) ended with a status or
        an error: the delay before the next try, or None to stop. ``remaining`` is what is
        left of the request timeout in seconds, when there is one."""
        if attempt < 1 or attempt > self.attempts or not self.retryable(status_or_error):
            return None
        wait = self.delay(attempt, draw)
        if remaining is not None and wait >= remaining:
            return None
        return wait
