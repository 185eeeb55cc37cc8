"""Per-backend state: choice among endpoints outlier detection leaves in; an endpoint back
from ejection starts with a fresh estimate; a policy change starts the backend afresh."""

from __future__ import annotations

import random

from l7proxy.resilience.outlier import OutlierParams
from l7proxy.resilience.params import BackendParams
from l7proxy.resilience.state import Resilience

T = ("default", "web", 8080)
A, B = ("10.0.0.1", 80), ("10.0.0.2", 80)
OUTLIERS = BackendParams(outlier=OutlierParams(
    consecutive_5xx=1, interval=1.0, base_ejection_time=10.0, max_ejection_percent=100
))


def test_an_endpoint_back_from_ejection_joins_at_the_best_estimate() -> None:
    r = Resilience(random.Random(1).random, {("default", "web"): OUTLIERS})
    eps = (A, B)
    r.choose(T, eps, 0.0)
    r.started(T, A, 0.0)
    assert r.finished(T, A, 503, 0.001, 0.0)  # ejected; its estimate is the 5 s penalty
    r.started(T, B, 0.0)
    r.finished(T, B, 200, 0.05, 0.0)
    assert all(r.choose(T, eps, 5.0) == B for _ in range(10))
    # at 10 s it is back, at b's estimate (not its 5 s penalty): P2C shares between them
    chosen = {r.choose(T, eps, 10.0) for _ in range(20)}
    loads = r.backend(T).balancer.loads
    assert loads[A].estimate == loads[B].estimate
    assert chosen == {A, B}


def test_a_changed_policy_starts_the_backend_afresh_and_an_unchanged_one_keeps_it() -> None:
    r = Resilience(random.random, {("default", "web"): OUTLIERS})
    first = r.backend(T)
    r.update({("default", "web"): OUTLIERS})
    assert r.backend(T) is first
    r.update({})
    assert r.backend(T) is not first and r.backend(T).outliers is None


def test_pending_is_kept_per_endpoint_and_abandon_releases_it() -> None:
    r = Resilience(random.random)
    r.started(T, A, 0.0)
    r.started(T, A, 0.0)
    r.abandoned(T, A)
    assert r.backend(T).balancer.loads[A].pending == 1
    r.finished(T, A, 200, 0.01, 0.1)
    assert r.backend(T).balancer.loads[A].pending == 0
