"""Connection-pool limits accounting (Envoy's circuit breakers with Istio's names)."""

from __future__ import annotations

from l7proxy.resilience.limits import Admit, PoolLimits, PoolParams


def test_requests_beyond_max_connections_wait_then_overflow_past_pending() -> None:
    limits = PoolLimits(PoolParams(max_connections=2, max_pending=1))
    assert [limits.admit() for _ in range(4)] == [Admit.GO, Admit.GO, Admit.WAIT, Admit.OVERFLOW]
    assert limits.overflows == 1
    assert not limits.can_promote()
    limits.finish()
    assert limits.can_promote()
    limits.promote()
    assert (limits.active, limits.pending) == (2, 0)


def test_max_requests_tighter_than_connections_overflows_at_once() -> None:
    limits = PoolLimits(PoolParams(max_requests=1))
    assert limits.admit() is Admit.GO
    assert limits.admit() is Admit.OVERFLOW


def test_pending_zero_overflows_without_waiting() -> None:
    limits = PoolLimits(PoolParams(max_connections=1, max_pending=0))
    assert limits.admit() is Admit.GO
    assert limits.admit() is Admit.OVERFLOW


def test_abandon_frees_a_pending_place() -> None:
    limits = PoolLimits(PoolParams(max_connections=1, max_pending=1))
    limits.admit()
    assert limits.admit() is Admit.WAIT
    limits.abandon()
    assert limits.admit() is Admit.WAIT


def test_retries_are_bounded_in_flight() -> None:
    limits = PoolLimits(PoolParams(max_retries=1))
    assert limits.start_retry()
    assert not limits.start_retry()
    limits.end_retry()
    assert limits.start_retry()


def test_requests_per_connection() -> None:
    assert PoolLimits(PoolParams()).reusable(10**6)
    one = PoolLimits(PoolParams(max_requests_per_connection=1))
    assert not one.reusable(1)
    two = PoolLimits(PoolParams(max_requests_per_connection=2))
    assert two.reusable(1) and not two.reusable(2)
