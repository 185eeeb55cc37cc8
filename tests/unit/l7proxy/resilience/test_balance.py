"""Peak-EWMA load and P2C choice (Linkerd's balancer), on a clock the test moves."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from l7proxy.resilience.balance import DEFAULT_RTT, P2C, EwmaParams, PeakEwma

P = EwmaParams(default_rtt=0.03, decay=10.0, penalty=5.0)


def test_an_unmeasured_endpoint_costs_the_default_rtt_times_pending_plus_one() -> None:
    load = PeakEwma(P, now=0.0)
    assert load.cost(0.0) == pytest.approx(DEFAULT_RTT)
    load.pending = 3
    assert load.cost(0.0) == pytest.approx(4 * DEFAULT_RTT)


def test_a_peak_replaces_the_estimate_at_once() -> None:
    load = PeakEwma(P, now=0.0)
    load.observe(2.0, now=1.0, status=200)
    assert load.cost(1.0) == pytest.approx(2.0)


def test_a_lower_sample_decays_in_by_elapsed_time() -> None:
    load = PeakEwma(P, now=0.0)
    load.observe(1.0, now=0.0, status=200)
    load.observe(0.1, now=10.0, status=200)  # one decay constant later
    w = math.exp(-1.0)
    assert load.estimate == pytest.approx(1.0 * w + 0.1 * (1 - w))


def test_reading_the_cost_decays_toward_zero_so_a_slow_endpoint_is_retried() -> None:
    load = PeakEwma(P, now=0.0)
    load.observe(1.0, now=0.0, status=200)
    assert load.cost(20.0) == pytest.approx(math.exp(-2.0))
    assert load.cost(100.0) < 0.001


@pytest.mark.parametrize("status", [429, 503, 0])
def test_429_503_and_no_answer_count_as_the_penalty(status: int) -> None:
    load = PeakEwma(P, now=0.0)
    load.observe(0.001, now=0.0, status=status)
    assert load.estimate == pytest.approx(5.0)


def test_a_penalized_answer_slower_than_the_penalty_keeps_its_latency() -> None:
    load = PeakEwma(P, now=0.0)
    load.observe(7.0, now=0.0, status=503)
    assert load.estimate == pytest.approx(7.0)


def test_other_errors_are_not_penalized() -> None:
    load = PeakEwma(P, now=0.0)
    load.observe(0.001, now=0.0, status=500)
    assert load.estimate == pytest.approx(0.03)  # below the default: decays in, no time passed


def test_p2c_takes_the_cheaper_of_two_and_never_the_same_twice() -> None:
    draws = iter([0.0, 0.0])  # first index 0, second from the others: index 1
    p2c: P2C[str] = P2C(P, lambda: next(draws))
    p2c.load("a", 0.0).observe(1.0, 0.0, 200)
    assert p2c.choose(["a", "b", "c"], 0.0) == "b"


def test_p2c_avoids_a_slow_endpoint_with_a_seeded_rng() -> None:
    rng = random.Random(7)
    p2c: P2C[str] = P2C(P, rng.random)
    endpoints = ["fast1", "fast2", "slow"]
    chosen: Counter[str] = Counter()
    for i in range(300):
        now = i * 0.01
        e = p2c.choose(endpoints, now)
        chosen[e] += 1
        p2c.load(e, now).observe(0.5 if e == "slow" else 0.005, now, 200)
    # the slow one is only ever picked when both draws miss the fast ones' lower cost,
    # which P2C never does: it is chosen at most until its first sample
    assert chosen["slow"] <= 2
    assert chosen["fast1"] > 100 and chosen["fast2"] > 100


def test_a_new_endpoint_starts_level_with_the_best_and_takes_its_share_at_once() -> None:
    # A scale-up beside fast endpoints: at the default 30 ms it would wait ~30 s for a request.
    rng = random.Random(3)
    p2c: P2C[str] = P2C(P, rng.random)
    for i in range(50):
        now = i * 0.01
        e = p2c.choose(["a", "b"], now)
        p2c.load(e, now).observe(0.001, now, 200)
    chosen: Counter[str] = Counter()
    for i in range(50, 110):
        now = i * 0.01
        e = p2c.choose(["a", "b", "new"], now)
        chosen[e] += 1
        p2c.load(e, now).observe(0.001, now, 200)
    assert p2c.loads["new"].estimate < DEFAULT_RTT
    assert chosen["new"] >= 10


def test_a_new_endpoint_never_starts_above_the_default() -> None:
    p2c: P2C[str] = P2C(P, random.random)
    p2c.load("slow", 0.0).observe(1.0, 0.0, 200)
    assert p2c.load("new", 0.0).estimate == DEFAULT_RTT


def test_pending_requests_spread_the_load() -> None:
    rng = random.Random(1)
    p2c: P2C[str] = P2C(P, rng.random)
    for _ in range(40):
        p2c.load(p2c.choose(["a", "b"], 0.0), 0.0).pending += 1
    assert {p2c.loads["a"].pending, p2c.loads["b"].pending} == {20}


def test_one_endpoint_is_chosen_without_a_draw_and_none_is_an_error() -> None:
    p2c: P2C[str] = P2C(P, lambda: pytest.fail("no draw needed"))  # type: ignore[no-any-return]
    assert p2c.choose(["only"], 0.0) == "only"
    with pytest.raises(ValueError, match="no endpoints"):
        p2c.choose([], 0.0)


def test_retain_forgets_endpoints_that_left() -> None:
    p2c: P2C[str] = P2C(P, random.random)
    p2c.load("a", 0.0)
    p2c.load("b", 0.0)
    p2c.retain(["b"])
    assert set(p2c.loads) == {"b"}


EPS3 = ["a", "b", "c"]


def test_round_robin_takes_the_endpoints_in_turn_and_wraps_when_the_set_shrinks() -> None:
    rr: P2C[str] = P2C(P, random.Random(1).random, "ROUND_ROBIN")
    assert [rr.choose(EPS3, 0.0) for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]
    rr.choose(EPS3, 0.0)  # a
    assert [rr.choose(["a", "b"], 0.0) for _ in range(3)] == ["b", "a", "b"]


def test_random_spreads_evenly_whatever_the_loads() -> None:
    rnd: P2C[str] = P2C(P, random.Random(5).random, "RANDOM")
    rnd.load("a", 0.0).observe(5.0, 0.0)  # a slow endpoint is still chosen a third
    counts = Counter(rnd.choose(EPS3, 0.0) for _ in range(3000))
    assert all(900 <= counts[e] <= 1100 for e in EPS3), counts


def test_least_request_compares_requests_in_flight_not_latency() -> None:
    lr: P2C[str] = P2C(P, random.Random(9).random, "LEAST_REQUEST")
    lr.load("a", 0.0).observe(5.0, 0.0)  # slow, but idle
    lr.load("b", 0.0).pending = 3
    assert lr.choose(["a", "b"], 0.0) == "a"
    ewma: P2C[str] = P2C(P, random.Random(9).random)  # the default weighs latency in
    ewma.load("a", 0.0).observe(5.0, 0.0)
    ewma.load("b", 0.0).pending = 3
    assert ewma.choose(["a", "b"], 0.0) == "b"
