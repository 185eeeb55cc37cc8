"""Linear-time regular expressions for patterns that users write and clients feed.

Route matches (RegularExpression paths, headers, query parameters) and observer filters
(``--http-path``) run user patterns against input an attacker controls. Python's ``re``
backtracks: ``(a+)+$`` against 30 ``a`` and a ``!`` takes minutes. RE2 (``google-re2``)
matches in time linear in the input, at the price of the Perl features that need
backtracking: backreferences, lookarounds, atomic groups and possessive repeats. Those
are refused with a message naming the feature. Patterns are capped at 1024 bytes, the
Gateway API's own cap on a path match value, so program size (RE2 memory) stays small.
"""

from __future__ import annotations

from typing import Any

import re2
from re2 import _re2

MAX_PATTERN_BYTES = 1024


class RegexError(ValueError):
    """A pattern that Tulle refuses; the message says why."""


class LinearPattern:
    """A compiled RE2 pattern that answers yes or no. Calls the binding's ``RE2.Match``
    directly: ``re2.compile(...).fullmatch`` builds match objects and costs about 3 us a
    call against 0.7 us here, and routes match on every request. Captures are off
    (``never_capture``): nothing reads groups."""

    __slots__ = ("pattern", "_regexp")

    def __init__(self, pattern: str, regexp: Any) -> None:
        self.pattern = pattern
        self._regexp = regexp

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of ``text`` matches."""
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._regexp.Match(_BOTH, data, 0, len(data))[0] != _NO_SPAN)

    def search(self, text: str) -> bool:
        """Whether some part of ``text`` matches."""
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._regexp.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_SPAN)

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors come back as exceptions, not on stderr
_OPTIONS.never_capture = True
_BOTH = _re2.RE2.Anchor.ANCHOR_BOTH
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NO_SPAN = (-1, -1)

_UNSUPPORTED = (
    ("invalid perl operator: (?=", "lookahead (?=...)"),
    ("invalid perl operator: (?!", "negative lookahead (?!...)"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...)"),
    ("invalid perl operator: (?<!", "negative lookbehind (?<!...)"),
    ("invalid perl operator: (?>", "atomic groups (?>...)"),
    ("bad repetition operator: ++", "possessive repeats (a++)"),
    ("bad repetition operator: *+", "possessive repeats (a*+)"),
    ("bad repetition operator: ?+", "possessive repeats (a?+)"),
)


def compile_linear(pattern: str) -> LinearPattern:
    """``pattern`` compiled by RE2, or RegexError saying what is wrong with it."""
    encoded = pattern.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PATTERN_BYTES:
        raise RegexError(
            f"is {len(encoded)} bytes long; regular expressions are limited to "
            f"{MAX_PATTERN_BYTES} bytes"
        )
    regexp = _re2.RE2(encoded, _OPTIONS)
    if not regexp.ok():
        raise RegexError(_explain(regexp.error()))
    return LinearPattern(pattern, regexp)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or None when RE2 accepts it."""
    try:
        compile_linear(pattern)
    except RegexError as exc:
        return str(exc)
    return None


def _explain(raw: bytes | str) -> str:
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    for needle, feature in _UNSUPPORTED:
        if detail.startswith(needle):
            return (
                f"uses {feature}, which RE2 does not support: Tulle matches regular "
                "expressions in linear time (RE2 syntax)"
            )
    if detail.startswith("invalid escape sequence: \\") and detail[-1:].isdigit():
        return (
            "uses backreferences (\\1 ... \\9), which RE2 does not support: Tulle matches "
            "regular expressions in linear time (RE2 syntax)"
        )
    return f"is not valid RE2 syntax ({detail})"
