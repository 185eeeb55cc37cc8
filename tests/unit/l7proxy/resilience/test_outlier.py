"""Outlier detection: Envoy's consecutive-error ejection with Istio's parameters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from l7proxy.resilience.outlier import NO_ANSWER, OutlierDetector, OutlierParams

EPS = ["a", "b", "c", "d"]


def detector(**kw: int | float) -> OutlierDetector[str]:
    base = dict(consecutive_5xx=3, interval=1.0, base_ejection_time=10.0,
                max_ejection_percent=50, min_health_percent=0)
    base.update(kw)
    return OutlierDetector(OutlierParams(**base))  # type: ignore[arg-type]


def fail(d: OutlierDetector[str], e: str, n: int, now: float = 0.0, status: int = 500) -> bool:
    return any([d.record(e, status, now, len(EPS)) for _ in range(n)])


def test_consecutive_5xx_eject_and_a_success_resets_the_count() -> None:
    d = detector()
    assert not fail(d, "a", 2)
    d.record("a", 200, 0.0, 4)
    assert not fail(d, "a", 2)
    assert fail(d, "a", 1)
    assert d.available(EPS, 0.0) == ["b", "c", "d"]


def test_4xx_is_not_an_error() -> None:
    d = detector()
    assert not fail(d, "a", 10, status=404)


def test_gateway_errors_count_only_502_503_504_and_no_answer() -> None:
    d = detector(consecutive_5xx=0, consecutive_gateway=2)
    assert not fail(d, "a", 5, status=500)
    assert fail(d, "b", 2, status=503)
    assert fail(d, "c", 2, status=0)


def test_a_threshold_of_zero_turns_detection_off() -> None:
    d = detector(consecutive_5xx=0, consecutive_gateway=0)
    assert not fail(d, "a", 100)


def test_ejection_time_is_base_times_ejections_and_the_endpoint_comes_back() -> None:
    d = detector()
    assert fail(d, "a", 3, now=0.0)
    assert "a" not in d.available(EPS, 9.9)
    assert "a" in d.available(EPS, 10.0)  # the sweep at 10 s returns it
    assert fail(d, "a", 3, now=10.0)  # second ejection: 20 s
    assert "a" not in d.available(EPS, 29.9)
    assert "a" in d.available(EPS, 30.0)


def test_a_healthy_interval_lowers_the_ejection_multiplier() -> None:
    d = detector()
    fail(d, "a", 3, now=0.0)
    d.available(EPS, 10.0)  # back; ejections still 1
    d.available(EPS, 11.0)  # a sweep while in: 0
    assert fail(d, "a", 3, now=11.0)
    assert "a" in d.available(EPS, 21.0)  # 10 s again, not 20


def test_returns_only_at_a_sweep_interval() -> None:
    d = detector(interval=5.0, base_ejection_time=1.0)
    d.available(EPS, 0.0)  # sweep at 0, next at 5
    fail(d, "a", 3, now=0.0)
    assert "a" not in d.available(EPS, 2.0)  # time is up at 1 s, the sweep is at 5 s
    assert "a" in d.available(EPS, 5.0)


def test_max_ejection_percent_caps_ejections() -> None:
    d = detector(max_ejection_percent=50)
    assert fail(d, "a", 3)
    assert fail(d, "b", 3)
    assert not fail(d, "c", 3)  # 2 of 4 out already: 50 %
    assert d.available(EPS, 0.0) == ["c", "d"]


def test_the_first_ejection_goes_even_under_a_small_percent() -> None:
    d = detector(max_ejection_percent=10)  # Envoy checks before ejecting: 0 % < 10 %
    assert fail(d, "a", 3)
    assert not fail(d, "b", 3)


def test_max_ejection_percent_zero_ejects_nothing() -> None:
    d = detector(max_ejection_percent=0)
    assert not fail(d, "a", 3)


def test_below_min_health_percent_detection_is_ignored() -> None:
    d = detector(max_ejection_percent=100, min_health_percent=75)
    fail(d, "a", 3)
    assert d.available(EPS, 0.0) == ["b", "c", "d"]  # 75 % in
    fail(d, "b", 3)
    assert d.available(EPS, 0.0) == EPS  # 50 % in: panic, all of them


def test_all_ejected_chooses_among_all() -> None:
    d = detector(max_ejection_percent=100)
    for e in EPS:
        fail(d, e, 3)
    assert d.available(EPS, 0.0) == EPS


def test_retain_forgets_endpoints_that_left() -> None:
    d = detector()
    fail(d, "a", 3)
    d.retain(["b"])
    assert d.available(["a", "b"], 0.0) == ["a", "b"]


def test_split_local_origin_errors_count_apart() -> None:
    """Istio's splitExternalLocalOriginErrors: tries without an answer count only toward
    consecutiveLocalOriginFailures; answers (even 5xx) reset that count and count as usual."""
    d = detector(split_local_origin=True, consecutive_local_origin=2)
    assert not fail(d, "a", 1, status=NO_ANSWER)
    assert not fail(d, "a", 2, status=500)  # 2 of 3 5xx; and an answer: local count reset
    assert not fail(d, "a", 1, status=NO_ANSWER)  # local 1 of 2; the 5xx count untouched
    assert fail(d, "a", 1, status=500)  # the third 5xx in a row ejects
    assert fail(d, "b", 2, status=NO_ANSWER)  # two local-origin failures eject b
    assert d.available(EPS, 0.0) == ["c", "d"]


def test_without_the_split_no_answer_is_a_5xx_and_the_local_threshold_is_unused() -> None:
    d = detector(consecutive_local_origin=1)
    assert not fail(d, "a", 2, status=NO_ANSWER)
    assert fail(d, "a", 1, status=NO_ANSWER)  # consecutive_5xx=3, as before


def test_a_local_origin_threshold_of_zero_turns_it_off() -> None:
    d = detector(split_local_origin=True, consecutive_local_origin=0)
    assert not fail(d, "a", 50, status=NO_ANSWER)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["record", "retain", "available"]),
                          st.sampled_from(EPS), st.sampled_from([200, 500, 503, NO_ANSWER]),
                          st.floats(0, 6)), max_size=60))
def test_the_ejected_count_follows_every_ejection_return_and_removal(
        steps: list[tuple[str, str, int, float]]) -> None:
    """``out`` (what lets ``available`` skip its list) is always the hosts ejected now, and
    ``available`` is the endpoints not ejected (all of them when none is in)."""
    d = detector(consecutive_5xx=2, max_ejection_percent=75)
    now = 0.0
    for op, endpoint, status, step in steps:
        now += step
        if op == "record":
            d.record(endpoint, status, now, len(EPS))
        elif op == "retain":
            d.retain([e for e in EPS if e != endpoint])
        else:
            d.sweep(now)
            healthy = [e for e in EPS if not d.ejected(e)]
            assert list(d.available(EPS, now)) == (healthy or EPS)
        assert d.out == sum(h.ejected_until is not None for h in d.hosts.values())
