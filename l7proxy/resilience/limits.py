"""Connection-pool limits for one Service: Envoy's circuit breakers, as Istio's
DestinationRule ``connectionPool`` sets them. Accounting only; the waypoint's gate
(``l7proxy/resilience/gate.py``) waits and answers.

Envoy keeps these per upstream cluster, that is per Service port, across its endpoints; so
does Tulle (per waypoint: each node's waypoint counts its own requests).

- ``max_connections`` (tcp.maxConnections): HTTP/1.1 carries one request per connection at a
  time, so this bounds the requests in flight to the Service. A request beyond it waits:
- ``max_pending`` (http.http1MaxPendingRequests) requests may wait; one more overflows.
- ``max_requests`` (http.http2MaxRequests) bounds requests in flight whatever the protocol;
  when it is the tighter bound, one more overflows at once (no connection to wait for).
- ``max_retries`` (maxRetries) bounds retries in flight; a retry beyond it is not made
  (the try's own answer stands).
Each overflow is a 503 whose flow says ``UPSTREAM_OVERFLOW`` (Envoy's ``UO`` flag).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

UNLIMITED = 2**32 - 1
"""Istio's default for every limit."""


@dataclass(frozen=True, slots=True)
class PoolParams:
    max_connections: int = UNLIMITED
    max_pending: int = UNLIMITED
    max_requests: int = UNLIMITED
    max_requests_per_connection: int = 0
    """0: no limit (Istio's default)."""
    max_retries: int = UNLIMITED


class Admit(StrEnum):
    GO = "go"
    """In flight now: call ``finish`` when it ends."""
    WAIT = "wait"
    """Pending: call ``promote`` when a slot frees (or ``abandon``)."""
    OVERFLOW = "overflow"


class PoolLimits:
    """Counters of one Service's requests, pending requests and retries."""

    __slots__ = ("params", "active", "pending", "retries", "overflows")

    def __init__(self, params: PoolParams) -> None:
        self.params = params
        self.active = 0
        self.pending = 0
        self.retries = 0
        self.overflows = 0

    @property
    def _in_flight_cap(self) -> int:
        return min(self.params.max_connections, self.params.max_requests)

    def admit(self) -> Admit:
        """A new request: in flight, pending, or overflow."""
        p = self.params
        if self.active >= p.max_requests and p.max_requests < p.max_connections:
            self.overflows += 1
            return Admit.OVERFLOW
        if self.active < self._in_flight_cap:
            self.active += 1
            return Admit.GO
        if self.pending >= p.max_pending:
            self.overflows += 1
            return Admit.OVERFLOW
        self.pending += 1
        return Admit.WAIT

    def can_promote(self) -> bool:
        return self.pending > 0 and self.active < self._in_flight_cap

    def promote(self) -> None:
        """A pending request goes in flight (after ``can_promote``)."""
        self.pending -= 1
        self.active += 1

    def abandon(self) -> None:
        """A pending request gave up (timeout, client gone)."""
        self.pending -= 1

    def finish(self) -> None:
        self.active -= 1

    def start_retry(self) -> bool:
        """True when a retry may go (then call ``end_retry`` after it)."""
        if self.retries >= self.params.max_retries:
            self.overflows += 1
            return False
        self.retries += 1
        return True

    def end_retry(self) -> None:
        self.retries -= 1

    def reusable(self, requests_served: int) -> bool:
        """Whether a connection that served this many requests may serve another."""
        limit = self.params.max_requests_per_connection
        return limit == 0 or requests_served < limit
