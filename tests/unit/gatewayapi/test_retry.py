"""Timeouts (GEP-1742) and retries (GEP-1731) carried on the selection, and the pure
retry policy."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayapi import RetryPolicy, Selection, Timeouts, UpstreamError
from tests.unit.gatewayapi.helpers import (
    PARENT,
    backend,
    draws,
    forward,
    request,
    route,
    select,
    tables,
)


def _rule(**config: Any) -> Any:
    return tables(route("r", rules=[{"backendRefs": [backend("web")], **config}]))


# GEP-1742 / HTTPRouteTimeouts: durations in GEP-2257 form; zero disables a timeout;
# unset leaves it to the implementation (Tulle: no deadline).
TIMEOUTS = [
    ({"request": "10s"}, Timeouts(10.0, None)),
    ({"request": "10s", "backendRequest": "500ms"}, Timeouts(10.0, 0.5)),
    ({"request": "0s", "backendRequest": "1m"}, Timeouts(None, 60.0)),
    ({"backendRequest": "0s"}, Timeouts(None, None)),
    ({}, Timeouts(None, None)),
]


@pytest.mark.parametrize(("config", "expected"), TIMEOUTS)
def test_timeouts_on_the_selection(config: dict[str, Any], expected: Timeouts) -> None:
    t = _rule(timeouts=config) if config else _rule()
    found = select(t)
    assert isinstance(found, Selection)
    assert found.timeouts == expected
    assert forward(t.route(PARENT, request("/"), rng=draws(0.0))).timeouts == expected


def test_named_rule_is_reported() -> None:
    t = tables(route("r", rules=[{"name": "checkout", "backendRefs": [backend("web")]}]))
    sent = forward(t.route(PARENT, request("/"), rng=draws(0.0)))
    assert str(sent.selection.ref) == "default/r#checkout"
    assert sent.selection.ref.rule_name == "checkout"


# GEP-1731 / HTTPRouteRetry: attempts count retries after the first try; 0 disables;
# codes list the retryable statuses.
POLICIES = [
    ({"codes": [500], "attempts": 2, "backoff": "100ms"}, RetryPolicy(2, frozenset({500}), 0.1)),
    ({"codes": [503]}, RetryPolicy(1, frozenset({503}), 0.025)),
    ({"codes": [503], "attempts": 0}, None),
]


@pytest.mark.parametrize(("config", "policy"), POLICIES)
def test_retry_policy_on_the_selection(config: dict[str, Any], policy: RetryPolicy | None) -> None:
    assert forward(_rule(retry=config).route(PARENT, request("/"), rng=draws(0.0))).retry == policy


def test_no_retry_stanza_no_retries() -> None:
    assert forward(_rule().route(PARENT, request("/"), rng=draws(0.0))).retry is None


POLICY = RetryPolicy(attempts=2, codes=frozenset({500, 502, 503, 504}), backoff=0.1)

# (try that just failed, outcome, delay before the next try or None)
SHOULD_RETRY: list[tuple[int, int | UpstreamError, float | None]] = [
    (1, 503, 0.1),
    (2, 500, 0.2),
    (3, 500, None),  # two retries used: three tries in all
    (1, 404, None),
    (1, 200, None),
    (1, UpstreamError.CONNECT_FAILED, 0.1),
    (1, UpstreamError.CONNECT_TIMEOUT, 0.1),
    (1, UpstreamError.REFUSED_STREAM, 0.1),
    (1, UpstreamError.BACKEND_TIMEOUT, 0.1),
    (1, UpstreamError.RESET_BEFORE_RESPONSE, 0.1),  # no byte of a response yet
    (1, UpstreamError.RESET_AFTER_SEND, None),  # the response had begun: not retried
    (0, 500, None),
]


@pytest.mark.parametrize(("attempt", "outcome", "delay"), SHOULD_RETRY)
def test_should_retry(attempt: int, outcome: int | UpstreamError, delay: float | None) -> None:
    got = POLICY.should_retry(attempt, outcome)
    if delay is None:
        assert got is None
    else:
        assert got == pytest.approx(delay)


def test_backoff_is_capped_and_jittered_above_the_base() -> None:
    policy = RetryPolicy(attempts=20, codes=frozenset({500}), backoff=0.1)
    assert policy.delay(1) == pytest.approx(0.1)
    assert policy.delay(3) == pytest.approx(0.4)
    assert policy.delay(10) == pytest.approx(1.0)  # 10 x base
    assert policy.delay(3, draw=0.0) == pytest.approx(0.1)
    assert policy.delay(3, draw=0.5) == pytest.approx(0.25)


def test_no_retry_past_the_request_timeout() -> None:
    # HTTPRouteRetry.backoff: the initial request and all retries must fit in the request
    # timeout.
    assert POLICY.should_retry(1, 500, remaining=0.05) is None
    assert POLICY.should_retry(1, 500, remaining=0.5) == pytest.approx(0.1)


@given(
    attempts=st.integers(min_value=1, max_value=10),
    outcomes=st.lists(st.sampled_from([500, 503, 404, *UpstreamError]), min_size=1, max_size=30),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_tries_never_exceed_attempts_plus_one(
    attempts: int, outcomes: list[int | UpstreamError], draw: float
) -> None:
    policy = RetryPolicy(attempts=attempts, codes=frozenset({500, 503}), backoff=0.01)
    tries = 0
    for outcome in outcomes:
        tries += 1
        delay = policy.should_retry(tries, outcome, draw=draw)
        if delay is None:
            break
        assert 0.01 <= delay <= 0.1 + 1e-12
    assert tries <= attempts + 1
