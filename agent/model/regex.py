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

from typing import Protocol

import re2

MAX_PATTERN_BYTES = 1024


class RegexError(ValueError):
    """A pattern that Tulle refuses; the message says why."""


class Match(Protocol):
    def group(self, index: int = 0) -> str: ...


class Pattern(Protocol):
    """The part of an RE2 pattern the matchers use (same names as ``re.Pattern``)."""

    pattern: str

    def fullmatch(self, text: str) -> Match | None: ...

    def search(self, text: str) -> Match | None: ...


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # errors come back as exceptions, not on stderr

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


def compile_linear(pattern: str) -> Pattern:
    """``pattern`` compiled by RE2, or RegexError saying what is wrong with it."""
    size = len(pattern.encode("utf-8", "surrogatepass"))
    if size > MAX_PATTERN_BYTES:
        raise RegexError(
            f"is {size} bytes long; regular expressions are limited to {MAX_PATTERN_BYTES} bytes"
        )
    try:
        compiled: Pattern = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise RegexError(_explain(exc)) from None
    return compiled


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or None when RE2 accepts it."""
    try:
        compile_linear(pattern)
    except RegexError as exc:
        return str(exc)
    return None


def _explain(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
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
