"""Per-Service resilience state in one waypoint worker: the balancer's loads, the outlier
detector, the pool limits and the retry budget of each backend (a Service port, Envoy's
cluster), made from the parameters its BackendTrafficPolicy gives (``params.py``) and remade
when they change. Pure: the caller passes the clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from l7proxy.resilience.balance import P2C, EwmaParams
from l7proxy.resilience.budget import RetryBudget
from l7proxy.resilience.limits import PoolLimits
from l7proxy.resilience.outlier import OutlierDetector
from l7proxy.resilience.params import BackendParams

Address = tuple[str, int]
Target = tuple[str, str, int]
"""(namespace, Service, port): a ``gatewayapi.BackendTarget``."""

NO_PARAMS = BackendParams()
DEFAULT_EWMA = EwmaParams()


@dataclass(slots=True)
class Backend:
    params: BackendParams
    balancer: P2C[Address]
    outliers: OutlierDetector[Address] | None
    limits: PoolLimits | None
    budget: RetryBudget | None = None
    known: Sequence[Address] = ()
    ejections: int = 0
    """Ejections so far (for metrics)."""


class Resilience:
    """Endpoint choice and accounting for every backend a worker sends to."""

    def __init__(
        self,
        rng: Callable[[], float],
        params: Mapping[tuple[str, str], BackendParams] | None = None,
        ewma: EwmaParams = DEFAULT_EWMA,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rng = rng
        self.clock = clock
        """Seconds, monotonic: latencies, ejection times (tests pass their own)."""
        self.ewma = ewma
        self.params: Mapping[tuple[str, str], BackendParams] = params or {}
        self.backends: dict[Target, Backend] = {}

    def update(self, params: Mapping[tuple[str, str], BackendParams]) -> None:
        """New policies: a backend whose parameters changed starts afresh (its loads too:
        a reset costs a few requests' worth of estimates)."""
        self.params = params
        for target in [t for t, b in self.backends.items() if b.params != self._of(t)]:
            del self.backends[target]

    def _of(self, target: Target) -> BackendParams:
        return self.params.get((target[0], target[1]), NO_PARAMS)

    def backend(self, target: Target) -> Backend:
        found = self.backends.get(target)
        if found is None:
            p = self._of(target)
            found = self.backends[target] = Backend(
                p,
                P2C(self.ewma, self.rng, p.balancer),
                OutlierDetector(p.outlier) if p.outlier is not None else None,
                PoolLimits(p.pool) if p.pool is not None else None,
                RetryBudget(p.budget) if p.budget is not None else None,
            )
        return found

    def choose(
        self,
        target: Target,
        endpoints: Sequence[Address],
        now: float,
        prefer: Address | None = None,
    ) -> Address:
        """P2C among the endpoints outlier detection leaves in (``endpoints`` not empty);
        ``prefer`` (a session's endpoint) when it is one of them."""
        backend = self.backend(target)
        known = backend.known
        if endpoints is not known:
            if tuple(endpoints) != tuple(known):  # a new set: forget those that left
                backend.balancer.retain(endpoints)
                if backend.outliers is not None:
                    backend.outliers.retain(endpoints)
            backend.known = endpoints
        outliers = backend.outliers
        if outliers is not None:
            # The calls are made only when they can do something: a sweep when one is due,
            # ``available`` when a host is out (else it returns ``endpoints`` as given).
            if now >= outliers.next_sweep:
                back = outliers.sweep(now)
                if back:
                    self._rejoin(backend, back, endpoints, now)
            if outliers.out:
                endpoints = outliers.available(endpoints, now)
        if prefer is not None and prefer in endpoints:
            return prefer
        return backend.balancer.choose(endpoints, now)

    @staticmethod
    def _rejoin(
        backend: Backend, back: Sequence[Address], endpoints: Sequence[Address], now: float
    ) -> None:
        """Endpoints back from ejection join at the estimate of the best endpoint in: P2C
        gives them a fair share at once, and their own answers decide from there. Their old
        estimate (a 5 s penalty) would keep them out long after their time; the default
        (30 ms) would too, beside endpoints answering in 1 ms."""
        balancer = backend.balancer
        returned = set(back)
        best = balancer.best_estimate([e for e in endpoints if e not in returned], now)
        for endpoint in back:
            load = balancer.load(endpoint, now)
            load.estimate = balancer.params.default_rtt if best is None else best
            load.stamp = now

    def started(self, target: Target, endpoint: Address, now: float) -> None:
        self.backend(target).balancer.load(endpoint, now).pending += 1

    def abandoned(self, target: Target, endpoint: Address) -> None:
        """A try that ended for the client's sake (it left): no sample."""
        backend = self.backends.get(target)
        load = backend.balancer.loads.get(endpoint) if backend is not None else None
        if load is not None:
            load.pending = max(load.pending - 1, 0)

    def finished(
        self, target: Target, endpoint: Address, status: int, rtt: float, now: float
    ) -> bool:
        """A try's outcome (``status`` 0: no answer). True when it ejected ``endpoint``."""
        backend = self.backend(target)
        load = backend.balancer.load(endpoint, now)
        load.pending = max(load.pending - 1, 0)
        load.observe(rtt, now, status)
        if backend.outliers is None:
            return False
        ejected = backend.outliers.record(endpoint, status, now, max(len(backend.known), 1))
        backend.ejections += ejected
        return ejected

    def limits(self, target: Target) -> PoolLimits | None:
        return self.backend(target).limits

    def budget(self, target: Target) -> RetryBudget | None:
        return self.backend(target).budget
