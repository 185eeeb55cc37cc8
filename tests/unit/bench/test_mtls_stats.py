"""bench/mtls/stats.py: the open-loop schedule, percentiles, added latency, CPU per krps."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.mtls.stats import (
    Latency,
    Schedule,
    StatsError,
    added,
    cpu_per_krps,
    measured,
    percentile,
    ratio,
    summarize,
)


def test_schedule_spreads_the_rate_round_robin_over_connections() -> None:
    s = Schedule(rate=1000, connections=10, seconds=1.0)
    assert s.interval == pytest.approx(0.01)
    assert s.offset(0, 0) == 0.0
    assert s.offset(3, 0) == pytest.approx(0.003)
    assert s.offset(3, 2) == pytest.approx(0.023)  # request 23 of the whole run
    assert [s.count(c) for c in range(10)] == [100] * 10
    assert s.total() == 1000


def test_schedule_counts_only_sends_before_the_end() -> None:
    s = Schedule(rate=3, connections=2, seconds=1.0)  # sends at 0, 1/3, 2/3 s
    assert [s.offset(0, i) for i in range(2)] == [0.0, pytest.approx(2 / 3)]
    assert s.count(0) == 2 and s.count(1) == 1 and s.total() == 3
    late = Schedule(rate=1, connections=5, seconds=2.0)  # connections 2..4 never send
    assert [late.count(c) for c in range(5)] == [1, 1, 0, 0, 0]


@settings(deadline=None)  # up to 10,000 offsets per example
@given(rate=st.floats(1, 2000), connections=st.integers(1, 64), seconds=st.floats(0.01, 5))
def test_schedule_total_is_every_request_intended_before_the_end(
    rate: float, connections: int, seconds: float
) -> None:
    s = Schedule(rate, connections, seconds)
    offsets = sorted(s.offset(c, i) for c in range(connections) for i in range(s.count(c)))
    assert len(offsets) == s.total()
    assert all(o < seconds for o in offsets)
    # evenly spaced: request n at n / rate, none missing
    assert all(abs(o - n / rate) < 1e-9 for n, o in enumerate(offsets))
    assert len(offsets) / rate >= seconds - 1e-6  # the next one would be past the end


@pytest.mark.parametrize(
    ("rate", "connections", "seconds", "message"),
    [
        (0, 1, 1, "rate"),
        (float("nan"), 1, 1, "rate"),
        (-5, 1, 1, "rate"),
        (100, 0, 1, "connections"),
        (100, 1, 0, "seconds"),
    ],
)
def test_schedule_refuses_impossible_inputs(
    rate: float, connections: int, seconds: float, message: str
) -> None:
    with pytest.raises(StatsError, match=message):
        Schedule(rate, connections, seconds)


def test_schedule_refuses_unknown_connections_and_negative_indexes() -> None:
    s = Schedule(100, 2, 1)
    with pytest.raises(StatsError, match="connection 2"):
        s.offset(2, 0)
    with pytest.raises(StatsError, match="index"):
        s.offset(0, -1)
    with pytest.raises(StatsError, match="connection -1"):
        s.count(-1)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 90) == 90.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.0  # rank ceil(1.0) = 1, never interpolated
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_no_samples_and_bad_quantiles() -> None:
    with pytest.raises(StatsError, match="no samples"):
        percentile([], 50)
    for q in (0, -1, 100.5):
        with pytest.raises(StatsError, match="percentile"):
            percentile([1.0], q)


def test_summarize_and_added_latency() -> None:
    base = summarize([0.1] * 50 + [0.2] * 40 + [0.3] * 9 + [5.0])
    assert base == Latency(100, 0.1, 0.2, 0.3, 5.0)
    mode = Latency(100, 0.15, 0.4, 0.25, 9.0)
    assert added(mode, base) == {"p50_ms": 0.05, "p90_ms": 0.2, "p99_ms": -0.05}


def test_measured_drops_the_warm_up_and_counts_from_the_intended_time() -> None:
    samples = [(0.5, 0.5, 0.6), (1.0, 1.002, 1.004), (1.5, 1.5, 1.5005)]
    lat, lag = measured(samples, warmup=1.0)
    assert lat == pytest.approx([4.0, 0.5])  # 1.004 - 1.0, not 1.004 - 1.002
    assert lag == pytest.approx([2.0, 0.0])


def test_measured_refuses_samples_out_of_order() -> None:
    with pytest.raises(StatsError, match="out of order"):
        measured([(1.0, 1.1, 1.05)], warmup=0)
    with pytest.raises(StatsError, match="out of order"):
        measured([(1.0, 0.9, 1.05)], warmup=0)


def test_cpu_per_krps_is_cpu_seconds_per_thousand_requests() -> None:
    # 0.6 CPU-s over 10 s at 1,000 req/s = 0.06 vCPU per 1,000 req/s (ztunnel's figure)
    assert cpu_per_krps(0.6, 10_000) == pytest.approx(0.06)
    with pytest.raises(StatsError, match="no requests"):
        cpu_per_krps(1.0, 0)
    with pytest.raises(StatsError, match="restarted"):
        cpu_per_krps(-0.1, 10)


def test_ratio_is_none_without_both_values() -> None:
    assert ratio(80.0, 100.0) == 0.8
    assert ratio(None, 100.0) is None and ratio(1.0, None) is None and ratio(1.0, 0) is None
