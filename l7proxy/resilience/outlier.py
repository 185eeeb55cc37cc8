"""Outlier detection: Envoy's consecutive-errors ejection, as Istio's DestinationRule
``outlierDetection`` configures it.

- Every 5xx answer (and every try that got no answer: connect failure, reset, timeout)
  counts toward ``consecutive_5xx``; 502, 503, 504 and no answer also count toward
  ``consecutive_gateway``. Any other answer resets both counts.
- With ``split_local_origin`` (Istio's ``splitExternalLocalOriginErrors``, Envoy's
  ``split_external_local_origin_errors``), a try without an answer is a local-origin error:
  it counts only toward ``consecutive_local_origin`` (``consecutiveLocalOriginFailures``,
  default 5), never toward the two above, and any answer (a local-origin success) resets it.
- An endpoint reaching either threshold is ejected at once, unless the endpoints already
  ejected are ``max_ejection_percent`` of the set or more (Envoy's check is made before
  the ejection, so the first one always goes when the percentage is above 0).
- It stays out for ``base_ejection_time`` x the times it has been ejected (capped at
  ``max_ejection_time``, Envoy's 300 s default). Each ``interval`` a sweep returns those
  whose time is up and lowers by one the ejection count of endpoints that are in.
- When fewer than ``min_health_percent`` of the endpoints are in, detection is off: the
  choice is among all of them (Istio's panic). With none in, likewise: answering 503 for
  the whole Service because every endpoint failed once would turn a blip into an outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

E = TypeVar("E")

GATEWAY_ERRORS = frozenset({502, 503, 504})
NO_ANSWER = 0
"""The status of a try that got no answer (connect failure, reset, timeout)."""


@dataclass(frozen=True, slots=True)
class OutlierParams:
    """Seconds and percentages. A threshold of 0 turns that detector off. Defaults are
    Istio's (consecutive5xxErrors 5, interval 10 s, baseEjectionTime 30 s, 10 %, 0 %)."""

    consecutive_5xx: int = 5
    consecutive_gateway: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0
    split_local_origin: bool = False
    consecutive_local_origin: int = 5  # counts only with split_local_origin


@dataclass(slots=True)
class _Host:
    errors_5xx: int = 0
    errors_gateway: int = 0
    errors_local: int = 0
    ejections: int = 0
    ejected_until: float | None = None


@dataclass(slots=True)
class OutlierDetector(Generic[E]):
    """Ejection state for one Service's endpoints."""

    params: OutlierParams
    next_sweep: float = 0.0
    hosts: dict[E, _Host] = field(default_factory=dict)
    out: int = 0
    """How many hosts are ejected now: with none, ``available`` is the endpoints as given,
    with no list built per request."""

    def record(self, endpoint: E, status: int, now: float, endpoints: int) -> bool:
        """Account for one try's outcome; True when it ejected ``endpoint``.
        ``endpoints``: how many the Service has now (for the percentage)."""
        host = self.hosts.get(endpoint)
        if host is None:
            host = self.hosts[endpoint] = _Host()
        p = self.params
        if p.split_local_origin:
            if status == NO_ANSWER:
                host.errors_local += 1
                tripped = bool(p.consecutive_local_origin
                               and host.errors_local >= p.consecutive_local_origin)
                return tripped and self._eject(host, now, endpoints)
            host.errors_local = 0  # an answer: the connection worked
        if status != NO_ANSWER and status < 500:
            host.errors_5xx = host.errors_gateway = 0
            return False
        host.errors_5xx += 1
        if status == NO_ANSWER or status in GATEWAY_ERRORS:
            host.errors_gateway += 1
        tripped = bool((p.consecutive_5xx and host.errors_5xx >= p.consecutive_5xx) or (
            p.consecutive_gateway and host.errors_gateway >= p.consecutive_gateway
        ))
        return tripped and self._eject(host, now, endpoints)

    def _eject(self, host: _Host, now: float, endpoints: int) -> bool:
        """Eject a host that reached a threshold (its counts start over), unless it is out
        already or ``max_ejection_percent`` is reached."""
        if host.ejected_until is not None:
            return False
        p = self.params
        host.errors_5xx = host.errors_gateway = host.errors_local = 0
        if endpoints <= 0 or 100 * self.out >= p.max_ejection_percent * endpoints:
            return False
        host.ejections += 1
        hold = min(p.base_ejection_time * host.ejections, max(p.max_ejection_time,
                                                               p.base_ejection_time))
        host.ejected_until = now + hold
        self.out += 1
        return True

    def sweep(self, now: float) -> Sequence[E]:
        """At each ``interval``: return endpoints whose ejection time is up; lower the
        ejection count of those in. Returns the endpoints that came back."""
        if now < self.next_sweep:
            return ()
        # on a fixed grid, as Envoy's interval timer: a late call does not shift it
        interval = self.params.interval
        self.next_sweep = now - (now - self.next_sweep) % interval + interval
        back = []
        for endpoint, host in self.hosts.items():
            if host.ejected_until is None:
                if host.ejections:
                    host.ejections -= 1
            elif now >= host.ejected_until:
                host.ejected_until = None
                self.out -= 1
                back.append(endpoint)
        return back

    def ejected(self, endpoint: E) -> bool:
        host = self.hosts.get(endpoint)
        return host is not None and host.ejected_until is not None

    def available(self, endpoints: Sequence[E], now: float) -> Sequence[E]:
        """The endpoints to choose among: those not ejected, or all of them when too few
        are in (``min_health_percent``, or none)."""
        self.sweep(now)
        if not self.out:
            return endpoints
        healthy = [e for e in endpoints if not self.ejected(e)]
        if not healthy or 100 * len(healthy) < self.params.min_health_percent * len(endpoints):
            return endpoints
        return healthy

    def retain(self, endpoints: Sequence[E]) -> None:
        keep = set(endpoints)
        for endpoint in [e for e in self.hosts if e not in keep]:
            self.out -= self.hosts.pop(endpoint).ejected_until is not None
