"""Gateway API (GEP-2257) durations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.model.duration import MAX_DURATION, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("0s", timedelta(0), "0s"),
        ("0h", timedelta(0), "0s"),
        ("10s", timedelta(seconds=10), "10s"),
        ("500ms", timedelta(milliseconds=500), "500ms"),
        ("1h2m", timedelta(hours=1, minutes=2), "1h2m"),
        (
            "1h30m30s500ms",
            timedelta(hours=1, minutes=30, seconds=30, milliseconds=500),
            "1h30m30s500ms",
        ),
        ("60m", timedelta(hours=1), "1h"),
        ("00060m", timedelta(hours=1), "1h"),
        ("1500ms", timedelta(seconds=1, milliseconds=500), "1s500ms"),
        ("1s1s", timedelta(seconds=2), "2s"),  # components add up, as in Go
        ("99999h59m59s999ms", MAX_DURATION, "99999h59m59s999ms"),
    ],
)
def test_parse_and_format(text: str, value: timedelta, canonical: str) -> None:
    assert parse_duration(text) == value
    assert format_duration(value) == canonical


@pytest.mark.parametrize(
    "text",
    ["", "10", "1.5s", "-1s", "1d", "1us", "123456s", "1h1m1s1ms1h", "1 s", "1H", "s"],
)
def test_invalid_durations(text: str) -> None:
    with pytest.raises(DurationError, match="invalid duration"):
        parse_duration(text)


def test_too_long_is_rejected() -> None:
    with pytest.raises(DurationError, match="at most 99999h59m59s999ms"):
        parse_duration("99999h99999m")


def test_format_rejects_unrepresentable_values() -> None:
    for value in (timedelta(seconds=-1), timedelta(microseconds=1), MAX_DURATION * 2):
        with pytest.raises(DurationError):
            format_duration(value)


@given(st.integers(min_value=0, max_value=MAX_DURATION // timedelta(milliseconds=1)))
def test_format_then_parse_is_identity(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    text = format_duration(value)
    assert parse_duration(text) == value
