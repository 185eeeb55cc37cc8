"""Path, header, query and method matching, one table per match type."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayapi.match import (
    parse_query,
    prefix_candidates,
    prefix_key,
    prefix_matches,
)
from tests.unit.gatewayapi.helpers import backend, picked, route, tables


def _one_rule(match: dict[str, Any]) -> Any:
    return tables(route("r", rules=[{"matches": [match], "backendRefs": [backend("web")]}]))


# Spec: HTTPPathMatch / PathMatchType "Exact": whole path, case-sensitive;
# "/abc" matches "/abc" only, not "/abc/", "/Abc" or "/abcd".
EXACT = [
    ("/abc", "/abc", True),
    ("/abc", "/abc/", False),
    ("/abc", "/Abc", False),
    ("/abc", "/abcd", False),
    ("/abc", "/abc?x=1", True),  # the query is not part of the path
    ("/", "/", True),
    ("/", "/a", False),
]


@pytest.mark.parametrize(("value", "target", "hit"), EXACT)
def test_exact_path(value: str, target: str, hit: bool) -> None:
    t = _one_rule({"path": {"type": "Exact", "value": value}})
    assert (picked(t, target) is not None) is hit


# Spec: PathMatchType "PathPrefix": element-wise; a trailing "/" in the prefix is
# ignored; "/abc" matches "/abc", "/abc/", "/abc/def", not "/abcd".
PREFIX = [
    ("/abc", "/abc", True),
    ("/abc", "/abc/", True),
    ("/abc", "/abc/def", True),
    ("/abc", "/abcd", False),
    ("/abc", "/ab", False),
    ("/abc/", "/abc", True),
    ("/abc/", "/abc/def", True),
    ("/abc/", "/abcdef", False),
    ("/abc/def", "/abc/def/ghi", True),
    ("/abc/def", "/abc/defg", False),
    ("/abc", "/ABC", False),
    ("/", "/", True),
    ("/", "/anything/at/all", True),
]


@pytest.mark.parametrize(("value", "target", "hit"), PREFIX)
def test_path_prefix(value: str, target: str, hit: bool) -> None:
    t = _one_rule({"path": {"type": "PathPrefix", "value": value}})
    assert (picked(t, target) is not None) is hit
    assert prefix_matches(value, target.partition("?")[0]) is hit


# Spec: RegularExpression is implementation-specific; Tulle: Python re, full match.
REGEX = [
    (r"/v[0-9]+/users", "/v2/users", True),
    (r"/v[0-9]+/users", "/v2/users/7", False),
    (r"/v[0-9]+/users", "/x/v2/users", False),
    (r"/v[0-9]+/.*", "/v10/anything", True),
]


@pytest.mark.parametrize(("value", "target", "hit"), REGEX)
def test_regex_path(value: str, target: str, hit: bool) -> None:
    t = _one_rule({"path": {"type": "RegularExpression", "value": value}})
    assert (picked(t, target) is not None) is hit


# Spec: HTTPHeaderMatch: names case-insensitive, Exact values case-sensitive;
# RegularExpression implementation-specific (full match here). Repeated header lines
# are matched as their combined value (RFC 9110 section 5.3).
HEADERS: list[tuple[dict[str, Any], list[tuple[str, str]], bool]] = [
    ({"name": "version", "value": "v2"}, [("Version", "v2")], True),
    ({"name": "Version", "value": "v2"}, [("version", "v2")], True),
    ({"name": "version", "value": "v2"}, [("version", "V2")], False),
    ({"name": "version", "value": "v2"}, [], False),
    ({"name": "version", "value": "v2"}, [("version", "v2x")], False),
    ({"name": "version", "value": "v2"}, [("version", "v1"), ("version", "v2")], False),
    ({"name": "accept", "value": "a,b"}, [("accept", "a"), ("accept", "b")], True),
    ({"name": "version", "type": "RegularExpression", "value": "v[23]"}, [("version", "v3")], True),
    (
        {"name": "version", "type": "RegularExpression", "value": "v[23]"},
        [("version", "v33")],
        False,
    ),
]


@pytest.mark.parametrize(("match", "headers", "hit"), HEADERS)
def test_header_match(match: dict[str, Any], headers: list[tuple[str, str]], hit: bool) -> None:
    t = _one_rule({"headers": [match]})
    assert (picked(t, "/", headers=headers) is not None) is hit


def test_all_header_matches_must_hold() -> None:
    t = _one_rule({"headers": [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]})
    assert picked(t, headers=[("a", "1"), ("b", "2")]) is not None
    assert picked(t, headers=[("a", "1")]) is None


# Spec: HTTPQueryParamMatch: exact names; first value recommended for repeats.
QUERY = [
    ({"name": "animal", "value": "whale"}, "/?animal=whale", True),
    ({"name": "animal", "value": "whale"}, "/?animal=dolphin", False),
    ({"name": "animal", "value": "whale"}, "/?Animal=whale", False),
    ({"name": "animal", "value": "whale"}, "/?animal=whale&animal=dolphin", True),
    ({"name": "animal", "value": "whale"}, "/?animal=dolphin&animal=whale", False),
    ({"name": "animal", "value": "whale"}, "/", False),
    ({"name": "q", "value": "a b"}, "/?q=a%20b", True),
    ({"name": "q", "type": "RegularExpression", "value": "[0-9]+"}, "/?q=123", True),
    ({"name": "q", "type": "RegularExpression", "value": "[0-9]+"}, "/?q=12a", False),
]


@pytest.mark.parametrize(("match", "target", "hit"), QUERY)
def test_query_match(match: dict[str, Any], target: str, hit: bool) -> None:
    t = _one_rule({"queryParams": [match]})
    assert (picked(t, target) is not None) is hit


# Spec: HTTPRouteMatch.method: matched only when the request has that method.
@pytest.mark.parametrize(
    ("rule_method", "method", "hit"),
    [("GET", "GET", True), ("GET", "POST", False), ("PATCH", "PATCH", True), (None, "PUT", True)],
)
def test_method_match(rule_method: str | None, method: str, hit: bool) -> None:
    t = _one_rule({"method": rule_method} if rule_method else {})
    assert (picked(t, "/", method=method) is not None) is hit


def test_any_match_of_a_rule_selects_it() -> None:
    # Spec: HTTPRouteRule.matches: a request matches the rule if ANY match holds.
    t = tables(
        route(
            "r",
            rules=[
                {
                    "matches": [
                        {
                            "path": {"value": "/foo"},
                            "headers": [{"name": "version", "value": "v2"}],
                        },
                        {"path": {"value": "/v2/foo"}},
                    ],
                    "backendRefs": [backend("web")],
                }
            ],
        )
    )
    assert picked(t, "/foo", headers=[("version", "v2")]) == "default/r#0"
    assert picked(t, "/v2/foo") == "default/r#0"
    assert picked(t, "/foo") is None


# Issue 9, item 6: regexes run on RE2, linear in the input. Under Python's re these
# patterns backtrack exponentially on a near-miss (the old engine refused the first
# shape by a heuristic and hung on the second, which the heuristic missed).
@pytest.mark.parametrize(
    ("match", "hit", "miss"),
    [
        (
            {"headers": [{"name": "x", "type": "RegularExpression", "value": "(a+)+$"}]},
            {"headers": [("x", "a" * 64)]},
            {"headers": [("x", "a" * 20_000 + "!")]},
        ),
        (
            {"path": {"type": "RegularExpression", "value": "/(\\w+\\s?)*"}},
            {"target": "/" + "ab" * 32},
            {"target": "/" + "a" * 20_000 + "!"},
        ),
        (
            {"queryParams": [{"name": "q", "type": "RegularExpression", "value": "(x|xx)+y"}]},
            {"target": "/?q=" + "x" * 40 + "y"},
            {"target": "/?q=" + "x" * 20_000},
        ),
    ],
)
def test_catastrophic_patterns_match_in_linear_time(
    match: dict[str, Any], hit: dict[str, Any], miss: dict[str, Any]
) -> None:
    t = _one_rule(match)
    assert picked(t, **hit) == "default/r#0"
    assert picked(t, **miss) is None  # returns at all: no exponential backtracking


# --- helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b/c", ["/a/b/c", "/a/b", "/a", ""]),
        ("/a/b/", ["/a/b", "/a", ""]),
        ("/", [""]),
        ("*", []),
    ],
)
def test_prefix_candidates(path: str, expected: list[str]) -> None:
    assert list(prefix_candidates(path)) == expected


def test_parse_query_keeps_first_value_and_blanks() -> None:
    assert parse_query("a=1&a=2&b=&c") == {"a": "1", "b": "", "c": ""}


# --- properties ----------------------------------------------------------------------------

segment = st.text(alphabet="abcxyz-_.", min_size=1, max_size=4).filter(
    lambda s: s not in (".", "..")
)
paths = st.lists(segment, min_size=0, max_size=5).map(lambda parts: "/" + "/".join(parts))


@given(prefix=paths, path=paths, slash=st.booleans())
def test_path_prefix_is_element_wise(prefix: str, path: str, slash: bool) -> None:
    """PathPrefix holds exactly when the prefix's segments are the path's first segments."""
    written = prefix + "/" if slash and prefix != "/" else prefix
    want = [s for s in prefix.split("/") if s]
    have = [s for s in path.split("/") if s]
    assert prefix_matches(written, path) is (have[: len(want)] == want)
    assert (prefix_key(written) in set(prefix_candidates(path))) is (have[: len(want)] == want)
