"""GCRA arithmetic on a clock the test sets: a burst of one second's worth, then exactly
``rate`` per second; a refusal costs nothing; several buckets are charged all or none."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7proxy.ratelimit.limiter import PRUNE_AT, Limiter


def admitted(limiter: Limiter, rate: int, times: list[float], key: str = "k") -> int:
    return sum(limiter.take([(key, rate)], t).allowed for t in times)


def test_a_full_bucket_admits_one_seconds_worth_at_once() -> None:
    limiter = Limiter()
    verdicts = [limiter.take([("k", 5)], 0.0) for _ in range(6)]
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0]
    assert verdicts[0].reset == pytest.approx(0.2)
    assert verdicts[4].reset == pytest.approx(1.0)
    refused = verdicts[5]
    assert (refused.limit, refused.bucket) == (5, "k")
    assert refused.retry_after == pytest.approx(0.2)  # one emission interval


def test_steady_load_above_the_limit_gets_the_rate() -> None:
    limiter = Limiter()
    # 100 requests a second for 10 s against 10/s: the burst of 10, then 10 a second
    times = [i / 100 for i in range(1000)]
    assert admitted(limiter, 10, times) == 10 + 100 - 1  # the last interval is not yet over
    later = [10.0 + i / 100 for i in range(1000)]  # a bucket already drained: just the rate
    assert admitted(limiter, 10, later) == 100


def test_a_request_after_retry_after_passes() -> None:
    limiter = Limiter()
    for _ in range(3):
        limiter.take([("k", 3)], 0.0)
    refused = limiter.take([("k", 3)], 0.1)
    assert not refused.allowed
    assert not limiter.take([("k", 3)], 0.1 + refused.retry_after - 1e-6).allowed
    assert limiter.take([("k", 3)], 0.1 + refused.retry_after).allowed


def test_refused_requests_cost_nothing() -> None:
    limiter = Limiter()
    limiter.take([("k", 1)], 0.0)
    for i in range(100):  # a client hammering while over its limit
        assert not limiter.take([("k", 1)], i / 101).allowed
    assert limiter.take([("k", 1)], 1.0).allowed


def test_buckets_are_charged_all_or_none() -> None:
    limiter = Limiter()
    # identity bucket 2/s, total 3/s: two from a, then b gets the last total one
    assert limiter.take([("total", 3), ("a", 2)], 0.0).allowed
    assert limiter.take([("total", 3), ("a", 2)], 0.0).allowed
    refused = limiter.take([("total", 3), ("a", 2)], 0.0)
    assert not refused.allowed and refused.bucket == "a"
    # a's refusal did not spend the total's last request
    assert limiter.take([("total", 3), ("b", 2)], 0.0).allowed
    refused = limiter.take([("total", 3), ("b", 2)], 0.0)
    assert not refused.allowed and refused.bucket == "total"


def test_the_verdict_names_the_tightest_bucket() -> None:
    limiter = Limiter()
    verdict = limiter.take([("total", 100), ("a", 2)], 0.0)
    assert (verdict.bucket, verdict.limit, verdict.remaining) == ("a", 2, 1)


def test_bad_calls_are_refused() -> None:
    with pytest.raises(ValueError, match="no buckets"):
        Limiter().take([], 0.0)
    with pytest.raises(ValueError, match="rate 0 must be at least 1"):
        Limiter().take([("k", 0)], 0.0)


def test_full_buckets_are_pruned() -> None:
    limiter = Limiter()
    for i in range(PRUNE_AT + 1):
        limiter.take([(i, 1)], float(i) * 2)  # each full again 1 s later
    assert len(limiter) < 3


@settings(max_examples=80, deadline=None)
@given(
    rate=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=300),
)
def test_no_window_admits_more_than_rate_times_its_length_plus_a_burst(
    rate: int, gaps: list[float]
) -> None:
    limiter = Limiter()
    now, passed = 0.0, []
    for gap in gaps:
        now += gap
        if limiter.take([("k", rate)], now).allowed:
            passed.append(now)
    for i, start in enumerate(passed):
        for j in range(i, len(passed)):
            window = passed[j] - start
            assert j - i + 1 <= rate * window + rate + 1e-6


CHARGES = st.lists(st.tuples(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 5)), min_size=1,
             max_size=3),
    st.floats(0, 0.5)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(CHARGES)
def test_admit_is_take_without_the_admitted_verdict(charges: list[tuple[list[tuple[str, int]],
                                                                         float]]) -> None:
    """Same refusals, same charges (so the same state after), over any sequence of
    requests charged to one or several buckets, the same bucket twice included."""
    taking, admitting = Limiter(), Limiter()
    now = 0.0
    for buckets, step in charges:
        now += step
        verdict = taking.take(buckets, now)
        refused = admitting.admit(buckets, now)
        assert (refused is None) is verdict.allowed
        if refused is not None:
            assert refused == verdict
        assert admitting._tat == taking._tat


def test_admit_refuses_what_take_refuses() -> None:
    with pytest.raises(ValueError, match="no buckets"):
        Limiter().admit([], 0.0)
    with pytest.raises(ValueError, match="at least 1"):
        Limiter().admit([("k", 0)], 0.0)


ONE_BUCKET = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 5),
                                st.floats(0, 0.5)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(ONE_BUCKET)
def test_admit_one_is_admit_of_one_bucket(charges: list[tuple[str, int, float]]) -> None:
    """The waypoint's one-bucket path (a Service's total): the same refusals (the same
    verdicts) and the same charges as ``admit``, so a rate limit still limits."""
    general, one = Limiter(), Limiter()
    now = 0.0
    for key, rate, step in charges:
        now += step
        assert one.admit_one(key, rate, now) == general.admit([(key, rate)], now)
        assert one._tat == general._tat


def test_admit_one_refuses_a_rate_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Limiter().admit_one("k", 0, 0.0)
