"""The GEP-3388 retry budget on a clock the tests move: the percentage of the interval's
requests, the minimum retry rate as a floor, and the window sliding on."""

from __future__ import annotations

from l7proxy.resilience.budget import BudgetParams, RetryBudget

NO_FLOOR = 0  # a floor of 0 leaves only the percentage (the spec's minimum is 1)


def taken(budget: RetryBudget, now: float, tries: int) -> int:
    return sum(budget.take(now) for _ in range(tries))


def test_defaults_are_the_geps() -> None:
    assert BudgetParams() == BudgetParams(percent=20, interval=10.0, min_count=10, min_interval=1.0)


def test_retries_are_capped_at_the_percentage_of_the_intervals_requests() -> None:
    budget = RetryBudget(BudgetParams(percent=20, interval=10.0, min_count=NO_FLOOR))
    for i in range(1000):
        budget.record(100.0 + i * 0.001)
    assert budget.requests(101.0) == 1000
    assert taken(budget, 101.0, 500) == 200  # 20% of 1000
    assert budget.denied == 300


def test_the_minimum_rate_lets_a_quiet_backend_retry() -> None:
    budget = RetryBudget(BudgetParams(percent=20, interval=10.0, min_count=3, min_interval=1.0))
    budget.record(50.0)  # one request: 20% of it allows no retry
    assert taken(budget, 50.0, 5) == 3
    # a second on, the floor has room again; the percentage still has none
    assert taken(budget, 51.5, 5) == 3


def test_zero_percent_leaves_only_the_floor() -> None:
    budget = RetryBudget(BudgetParams(percent=0, min_count=1))
    for _ in range(100):
        budget.record(10.0)
    assert taken(budget, 10.0, 10) == 1


def test_requests_and_retries_leave_the_window() -> None:
    budget = RetryBudget(BudgetParams(percent=50, interval=10.0, min_count=NO_FLOOR))
    for _ in range(10):
        budget.record(0.0)
    assert taken(budget, 1.0, 10) == 5
    # the requests are out of the window: no retry without new requests
    assert budget.requests(10.5) == 0
    assert taken(budget, 10.5, 1) == 0
    for _ in range(4):
        budget.record(12.0)
    # the old retries left with their requests: 50% of 4
    assert taken(budget, 12.0, 10) == 2


def test_a_retry_refused_is_not_counted() -> None:
    budget = RetryBudget(BudgetParams(percent=10, interval=10.0, min_count=NO_FLOOR))
    for _ in range(10):
        budget.record(0.0)
    assert taken(budget, 0.0, 3) == 1
    for _ in range(10):
        budget.record(0.5)
    assert taken(budget, 0.5, 1) == 1  # 2 of 20: the refusals took nothing
