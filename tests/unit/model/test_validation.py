"""Properties of the admission validators that guard the wire (issue 9, items 4 and 6):
whatever they accept cannot add a line to an HTTP head, and whatever they accept as a
regular expression compiles for RE2."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from agent.model.regex import MAX_PATTERN_BYTES, compile_linear
from agent.model.validation import (
    header_value,
    hostname,
    http_path,
    http_token,
    precise_hostname,
    regular_expression,
)
from l7proxy.http.wire import response_head

# Ordinary characters plus every byte class an attacker reaches for.
TRICKY = st.text(
    st.sampled_from(list("aZ09/-._~%2Ff;:=@#?\\ \t\r\n\x00\x01\x7f\u00e9\u2028*")), max_size=24
)
FRAMING = set("\r\n\x00")
CONTROLS = {chr(c) for c in range(32)} | {"\x7f"}


@given(TRICKY)
@example("a\r\nx-injected: 1")
@example("tulle\n")
def test_accepted_header_values_are_one_clean_field(value: str) -> None:
    if header_value(value) is not None:
        return
    assert not (set(value) & (CONTROLS - {"\t"})) and value.isascii()
    assert value == value.strip(" \t")
    head = response_head(200, b"OK", [(b"x", value.encode("ascii"))])
    assert head.count(b"\r\n") == 3


@given(TRICKY)
@example("x-route\n")
def test_accepted_header_names_are_tokens(value: str) -> None:
    if http_token(value) is not None:
        return
    assert value and not (set(value) & (CONTROLS | set(' :"(),/;<=>?@[\\]{}')))


@given(TRICKY)
@example("/v2 HTTP/1.1\r\nHost: evil")
@example("/api\n")
@example("/a/%2F/b")
def test_accepted_paths_are_absolute_and_free_of_tricks(value: str) -> None:
    if http_path(value) is not None:
        return
    assert value.startswith("/")
    assert not (set(value) & (CONTROLS | set(" #\\\u00e9\u2028")))
    for trick in ("//", "/./", "/../", "%2f", "%5c"):
        assert trick not in value.lower()
    assert not value.endswith(("/.", "/.."))


@given(TRICKY)
@example("orders.internal\n")
@example("a.example\r")
def test_accepted_hostnames_are_rfc1123(value: str) -> None:
    for check in (hostname, precise_hostname):
        if check(value) is None:
            assert set(value) <= set("abcdefghijklmnopqrstuvwxyz0123456789-.*")
            assert len(value) <= 253


@given(st.text(st.sampled_from(list("a(|)+*?\\1=!<>[]^$.{}2,")), max_size=40))
def test_accepted_regexes_compile_for_re2(pattern: str) -> None:
    if regular_expression(pattern) is None:
        compile_linear(pattern)


@given(st.integers(min_value=MAX_PATTERN_BYTES + 1, max_value=4 * MAX_PATTERN_BYTES))
def test_regexes_over_the_cap_are_refused(size: int) -> None:
    problem = regular_expression("a" * size)
    assert problem is not None and f"limited to {MAX_PATTERN_BYTES} bytes" in problem
