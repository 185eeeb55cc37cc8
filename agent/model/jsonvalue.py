"""One JSON value on its own, without the path a Reader gives it: its type named for
"expected X, got Y" messages, a number read as an integer, a range message, an RFC 3339
timestamp. The Reader (agent/model/reader.py) and the converters that read raw values
outside a Reader (documents, convert, convert_peerauth, convert_fast) share these.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from agent.model.validation import quote


def describe(value: object) -> str:
    """Name a JSON value's type for "expected X, got Y" messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {quote(shown)}"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def as_int(value: object) -> int | None:
    """A JSON number without a fraction as an int; None for anything else (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def range_message(value: int, minimum: int | None, maximum: int | None) -> str | None:
    """What is wrong with ``value`` against the bounds (None: within them)."""
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        return f"must be between {minimum} and {maximum}, got {value}"
    if minimum is not None and value < minimum:
        return f"must be at least {minimum}, got {value}"
    if maximum is not None and value > maximum:
        return f"must be at most {maximum}, got {value}"
    return None


def parse_timestamp(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp to an aware UTC datetime at second precision
    (the precision of metav1.Time); None if it is not one."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None or "T" not in text.upper():
        return None
    return value.astimezone(UTC).replace(microsecond=0)
