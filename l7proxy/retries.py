"""A request's retries against the Service's limits: its place among the retries in flight
(Istio's ``maxRetries``, ``resilience/limits.py``) and the Service's retry budget (GEP-3388,
``resilience/budget.py``). One per request, for the HTTP/1.1 and the h2c clients alike, with
the decision to retry a response status they share (``status_retry``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from gatewayapi import BackendTarget, Forward
from l7proxy.exchange import Exchange
from l7proxy.resilience.budget import RetryBudget
from l7proxy.resilience.limits import PoolLimits

if TYPE_CHECKING:
    from l7proxy.proxy import Proxy

RETRY_BUDGET_DROP = "UPSTREAM_RETRY_LIMIT_EXCEEDED"
"""A failed try whose retry the retry budget refused (Envoy's URX flag)."""

class Retries:
    """The request's place among the Service's retries in flight (``maxRetries``): held
    from a retry's decision until the next decision or the request's end; and the
    Service's retry budget (GEP-3388), which records the request and pays for each retry."""

    __slots__ = ("limits", "held", "budget", "clock", "over_budget")

    def __init__(
        self,
        limits: PoolLimits | None,
        budget: RetryBudget | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.limits = limits
        self.held = False
        self.budget = budget
        self.clock = clock
        self.over_budget = False
        """The last retry refused was refused by the budget (the flow says so)."""
        if budget is not None and clock is not None:
            budget.record(clock())

    def take(self) -> bool:
        """Whether one more retry may go."""
        limits = self.limits
        if limits is not None:
            self.release()
            self.held = limits.start_retry()
            if not self.held:
                return False
        budget = self.budget
        if budget is not None and self.clock is not None and not budget.take(self.clock()):
            self.over_budget = True
            self.release()
            return False
        return True

    def release(self) -> None:
        if self.held and self.limits is not None:
            self.limits.end_retry()
            self.held = False


def retries_for(proxy: Proxy, target: BackendTarget) -> Retries:
    """A request's retries to ``target`` (it counts in the budget from here)."""
    resilience = proxy.resilience
    return Retries(resilience.limits(target), resilience.budget(target), resilience.clock)


def status_retry(
    proxy: Proxy,
    ex: Exchange,
    fwd: Forward,
    status: int,
    attempt: int,
    deadline: float | None,
    retries: Retries,
) -> float | None:
    """After try ``attempt`` got a response head with ``status``: the wait before the
    next try, or None to send this response on. Only a body still whole is sent again."""
    policy = fwd.retry
    if policy is None or status not in policy.codes or not ex.body.replayable:
        return None
    remaining = deadline - asyncio.get_running_loop().time() if deadline is not None else None
    wait = policy.should_retry(attempt, status, draw=proxy.rng(), remaining=remaining)
    if wait is None or not retries.take():
        return None
    return wait
