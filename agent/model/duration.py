"""Gateway API durations (GEP-2257): parse "1h2m", "500ms" into timedelta and back.

A GEP-2257 duration matches ``^([0-9]{1,5}(h|m|s|ms)){1,4}$`` and is read with Go's
``time.ParseDuration`` semantics (components add up). Formatting is canonical: "0s" for
zero, otherwise each unit at most once, largest first ("1h2m", "1s500ms"). Durations
longer than 99999h59m59s999ms cannot be formatted and are rejected when parsed.
"""

from __future__ import annotations

import re
from datetime import timedelta

from agent.model.validation import quote

_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_COMPONENT = re.compile(r"([0-9]{1,5})(ms|h|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
MAX_DURATION = timedelta(hours=99999, minutes=59, seconds=59, milliseconds=999)


class DurationError(ValueError):
    """The text is not a GEP-2257 duration."""


def parse_duration(text: str) -> timedelta:
    """Parse a GEP-2257 duration such as "10s", "500ms" or "1h2m"."""
    if not _DURATION.match(text):
        raise DurationError(
            f"invalid duration {quote(text)}: must be 1 to 4 components of up to 5 digits, "
            "each followed by a unit h, m, s or ms (for example 10s, 500ms, 1h2m)"
        )
    total_ms = sum(int(n) * _UNIT_MS[unit] for n, unit in _COMPONENT.findall(text))
    value = timedelta(milliseconds=total_ms)
    if value > MAX_DURATION:
        raise DurationError(f"invalid duration {quote(text)}: must be at most 99999h59m59s999ms")
    return value


def format_duration(value: timedelta) -> str:
    """Format a duration in canonical GEP-2257 form; the inverse of parse_duration."""
    if value < timedelta(0) or value > MAX_DURATION:
        raise DurationError(f"duration {value} is outside 0s..99999h59m59s999ms")
    total_ms, rest = divmod(value, timedelta(milliseconds=1))
    if rest:
        raise DurationError(f"duration {value} has sub-millisecond precision")
    if total_ms == 0:
        return "0s"
    parts = []
    for unit in ("h", "m", "s", "ms"):
        count, total_ms = divmod(total_ms, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
