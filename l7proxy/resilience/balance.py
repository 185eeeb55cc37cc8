"""Power of two choices over peak-EWMA load: Linkerd's balancer (tower's ``PeakEwma``,
Finagle's before it), with Linkerd's load biaser for 429 and 503 answers.

An endpoint's cost is its round-trip estimate times (requests in flight + 1). A sample above
the estimate replaces it at once (the peak); one below it moves the estimate toward it by
``1 - exp(-elapsed / decay)``. Reading the cost decays the estimate toward 0 the same way,
so an endpoint that was slow and is left alone is tried again. A 429 or 503 answer counts as
a sample of ``penalty`` seconds unless it took longer (Linkerd's load biaser: such answers
are fast, and without it the balancer would favour the endpoint that refuses).

P2C draws two distinct endpoints at random and takes the cheaper: near least-loaded
choice with O(1) work and no herding on one endpoint after a stale reading.

A BackendTrafficPolicy's ``loadBalancer.simple`` (Istio's) picks another rule, with the
same accounting: LEAST_REQUEST compares the two draws' requests in flight only (Envoy's
least-request with two choices), ROUND_ROBIN takes the endpoints in turn, RANDOM any one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

E = TypeVar("E")

DEFAULT_RTT = 0.030
"""Seconds: the estimate of an endpoint not yet measured when no other endpoint of its set has
been either (Linkerd's default)."""
DEFAULT_DECAY = 10.0
"""Seconds (Linkerd's default): how long a peak takes to fade to 1/e of itself."""
DEFAULT_PENALTY = 5.0
"""Seconds: the latency a 429 or 503 answer counts as (Linkerd's load-biaser default)."""
PENALIZED = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class EwmaParams:
    default_rtt: float = DEFAULT_RTT
    decay: float = DEFAULT_DECAY
    penalty: float = DEFAULT_PENALTY


class PeakEwma:
    """One endpoint's load."""

    __slots__ = ("params", "estimate", "stamp", "pending")

    def __init__(self, params: EwmaParams, now: float) -> None:
        self.params = params
        self.estimate = params.default_rtt
        self.stamp = now
        self.pending = 0

    def _decay_to(self, sample: float, now: float) -> None:
        elapsed = max(now - self.stamp, 0.0)
        weight = math.exp(-elapsed / self.params.decay)
        self.estimate = self.estimate * weight + sample * (1.0 - weight)
        self.stamp = now

    def cost(self, now: float) -> float:
        self._decay_to(0.0, now)
        return self.estimate * (self.pending + 1)

    def observe(self, rtt: float, now: float, status: int = 0) -> None:
        """A response head after ``rtt`` seconds (``status`` 0: no answer, a failure)."""
        if status in PENALIZED or status == 0:
            rtt = max(rtt, self.params.penalty)
        if rtt > self.estimate:
            self.estimate = rtt
            self.stamp = now
        else:
            self._decay_to(rtt, now)


class P2C(Generic[E]):
    """Chooses among endpoints by their ``PeakEwma`` (kept per endpoint, dropped when an
    endpoint leaves the set). ``rng`` draws from [0, 1): seed it for tests."""

    def __init__(self, params: EwmaParams, rng: Callable[[], float], mode: str = "") -> None:
        self.params = params
        self.rng = rng
        self.mode = mode  # "" (UNSPECIFIED): peak-EWMA; or LEAST_REQUEST, ROUND_ROBIN, RANDOM
        self.turn = 0  # ROUND_ROBIN's next index
        self.loads: dict[E, PeakEwma] = {}

    def load(self, endpoint: E, now: float) -> PeakEwma:
        load = self.loads.get(endpoint)
        if load is None:
            load = PeakEwma(self.params, now)
            # A new endpoint (a scale-up) starts level with the best known one (never above
            # the default), so it takes its share at once; at DEFAULT_RTT beside 1 ms peers it
            # would get no request until that decayed (about 30 s at the default decay). A
            # slow newcomer is found out by its first answer: a sample above the estimate
            # replaces it.
            best = self.best_estimate(self.loads, now)
            if best is not None:
                load.estimate = min(best, self.params.default_rtt)
            self.loads[endpoint] = load
        return load

    def best_estimate(self, among: Iterable[E], now: float) -> float | None:
        """The lowest decayed round-trip estimate of the measured endpoints ``among`` (None:
        none is measured): where a newcomer or an endpoint back from ejection starts."""
        loads = [self.loads[e] for e in among if e in self.loads]
        if not loads:
            return None
        return min(load.cost(now) / (load.pending + 1) for load in loads)

    def choose(self, endpoints: Sequence[E], now: float) -> E:
        """The cheaper of two distinct random endpoints (the only one when alone)."""
        n = len(endpoints)
        if n == 0:
            raise ValueError("no endpoints to choose from")
        if n == 1:
            return endpoints[0]
        mode = self.mode
        if mode == "ROUND_ROBIN":
            i = self.turn % n  # a set that shrank just wraps
            self.turn = i + 1
            return endpoints[i]
        i = min(int(self.rng() * n), n - 1)
        if mode == "RANDOM":
            return endpoints[i]
        j = min(int(self.rng() * (n - 1)), n - 2)
        if j >= i:
            j += 1  # a distinct second draw, uniform over the others
        a, b = endpoints[i], endpoints[j]
        if mode == "LEAST_REQUEST":
            return a if self.load(a, now).pending <= self.load(b, now).pending else b
        return a if self.load(a, now).cost(now) <= self.load(b, now).cost(now) else b

    def retain(self, endpoints: Sequence[E]) -> None:
        """Forget endpoints no longer in the set (a Service scaled down)."""
        keep = set(endpoints)
        for endpoint in [e for e in self.loads if e not in keep]:
            del self.loads[endpoint]
