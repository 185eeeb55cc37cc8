"""Per-backend state: choice among endpoints outlier detection leaves in; an endpoint back
from ejection starts with a fresh estimate; a policy change starts the backend afresh."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

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


C = ("10.0.0.3", 80)
OUTCOMES = st.lists(st.tuples(st.sampled_from([200, 503, 0, 404]), st.floats(0, 3)),
                    min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(OUTCOMES, st.integers(0, 2**32))
def test_an_ejected_endpoint_is_never_chosen_while_another_is_in(
        outcomes: list[tuple[int, float]], seed: int) -> None:
    """Whatever the answers and the time between them: each choice is an endpoint outlier
    detection has not ejected (all three out at once only when each went at 100 %), and
    ejected ones come back when their time is up."""
    r = Resilience(random.Random(seed).random, {("default", "web"): OUTLIERS})
    eps = (A, B, C)
    now = 0.0
    for status, step in outcomes:
        now += step
        chosen = r.choose(T, eps, now)
        outliers = r.backend(T).outliers
        assert outliers is not None
        if not all(outliers.ejected(e) for e in eps):
            assert not outliers.ejected(chosen)
        r.started(T, chosen, now)
        r.finished(T, chosen, status, 0.001, now)
    r.choose(T, eps, now + 1000.0)  # long after every ejection time
    assert not any(r.backend(T).outliers.ejected(e) for e in eps)  # type: ignore[union-attr]
