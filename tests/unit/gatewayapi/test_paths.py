"""The path policy (gatewayapi/paths.py, issue 9 item 5): tables of normalized and
refused targets, and properties that tie the waypoint's view of a path to a backend's."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewayapi import Answer
from gatewayapi.match import prefix_matches
from gatewayapi.paths import (
    PathRefused,
    normalize_path,
    request_line_problem,
    split_target,
)
from tests.unit.gatewayapi.helpers import (
    PARENT,
    backend,
    draws,
    forward,
    request,
    respond,
    route,
    service,
)
from tests.unit.gatewayapi.helpers import tables as compile_tables

# RFC 3986 section 5.2.4 (dot segments), 6.2.2 (escapes); Envoy's merge_slashes.
NORMALIZED = [
    ("/a/b", "/a/b"),
    ("/", "/"),
    ("*", "*"),
    ("/a/./b", "/a/b"),
    ("/a/../b", "/b"),
    ("/../../b", "/b"),
    ("/a/b/..", "/a/"),
    ("/a/b/.", "/a/b/"),
    ("/..", "/"),
    ("/a/%62", "/a/b"),
    ("/%2e%2e/admin", "/admin"),
    ("/public/%2e%2e/admin", "/admin"),
    ("/public/%2E./admin", "/admin"),
    ("/a%40b", "/a%40b"),
    ("/a%25", "/a%25"),
    ("//admin", "/admin"),
    ("/a//b///c", "/a/b/c"),
    ("/a//", "/a/"),
    ("/public//..//admin", "/admin"),
    ("/.well-known/x", "/.well-known/x"),
    ("/a/", "/a/"),
    ("/a.b/c..d/...", "/a.b/c..d/..."),
]


@pytest.mark.parametrize(("raw", "normal"), NORMALIZED)
def test_normalize_path(raw: str, normal: str) -> None:
    assert normalize_path(raw) == normal


REFUSED = [
    ("/public%2F..%2Fadmin", "encoded slash (%2F)"),
    ("/public%2f..%2fadmin", "encoded slash (%2F)"),
    ("/public%5C..%5Cadmin", "encoded backslash (%5C)"),
    ("/public\\..\\admin", "a backslash"),
    ("/public/..;/admin", "a path parameter (;)"),
    ("/admin;jsessionid=1/x", "a path parameter (;)"),
    ("/public/..%3b/admin", "an encoded path parameter (%3B)"),
    ("/public/%C0%AE%C0%AE/admin", "not UTF-8"),
    ("/a#frag", "a fragment (#)"),
    ("/a b", "a space"),
    ("/a\r\nx", "a control character"),
    ("/a%00", "encoded control character (%00)"),
    ("/a%0d%0a", "encoded control character (%0D)"),
    ("/a%zz", "malformed percent-escape '%zz'"),
    ("/a%2", "malformed percent-escape '%2'"),
    ("/caf\u00e9", "non-ASCII character"),
    ("admin", 'must start with "/"'),
    ("", 'must start with "/"'),
]


@pytest.mark.parametrize(("raw", "why"), REFUSED)
def test_refused_paths_name_the_problem(raw: str, why: str) -> None:
    with pytest.raises(PathRefused, match=re.escape(why)):
        normalize_path(raw)


@pytest.mark.parametrize(
    ("target", "why"),
    [("/a?x=1#f", "fragment"), ("/a?x= 1", "a space"), ("/a?x=\n", "control character")],
)
def test_query_is_refused_only_for_what_breaks_the_request_line(target: str, why: str) -> None:
    with pytest.raises(PathRefused, match=why):
        split_target(target)
    assert split_target("/a/../b?x=%2F;y=..%5C") == ("/b", "x=%2F;y=..%5C")


def test_route_answers_400_and_forwards_normalized() -> None:
    t = compile_tables(
        service("admin"),
        route(
            "r",
            rules=[
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [backend("admin")],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/public"}}],
                    "backendRefs": [backend("web")],
                },
            ],
        ),
    )
    sent = forward(t.route(PARENT, request("//public/./a/%62?q=1"), rng=draws(0.0)))
    assert sent.request.target == "/public/a/b?q=1" and sent.backend.name == "web"
    sent = forward(t.route(PARENT, request("/public/%2e%2e/admin"), rng=draws(0.0)))
    assert sent.request.target == "/admin" and sent.backend.name == "admin"
    refused = respond(t.route(PARENT, request("/public/..;/admin"), rng=draws(0.0)))
    assert refused.response.status == 400 and refused.answer is Answer.INVALID_PATH
    assert b"path parameter" in refused.response.body


# --- properties ----------------------------------------------------------------------------

# Pieces attackers combine: dots (plain and encoded), slashes, escapes of every kind.
PIECES = st.sampled_from(
    ["/", "//", ".", "..", "%2e", "%2E", "%2e%2e", "a", "b", "admin", "public", "%41", "%40",
     "%25", "%2F", "%5C", "\\", ";", "~", "-", "%7e", "%3b", "%C0%AE", "%C3%A9"]
)  # fmt: skip
RAW = st.lists(PIECES, max_size=10).map(lambda parts: "/" + "".join(parts))


def _normalized_or_none(raw: str) -> str | None:
    try:
        return normalize_path(raw)
    except PathRefused:
        return None


def backend_view(path: str) -> str:
    """How a common backend (nginx, Go, Node) routes a path it accepts: percent-decode
    once (overlong UTF-8 as lax decoders read it), merge slashes, remove dot segments;
    ";" parameters stripped after decoding, as some Java stacks do."""
    decoded = unquote(path.replace("%C0%AE", "."))
    out: list[str] = []
    for segment in decoded.split("/")[1:]:
        segment = segment.partition(";")[0]
        if segment == "..":
            if out:
                out.pop()
        elif segment not in ("", "."):
            out.append(segment)
    return "/" + "/".join(out)


@given(RAW)
def test_normalize_is_idempotent(raw: str) -> None:
    once = _normalized_or_none(raw)
    if once is not None:
        assert normalize_path(once) == once


@given(RAW)
def test_normalized_paths_hold_no_tricks(raw: str) -> None:
    normal = _normalized_or_none(raw)
    if normal is None:
        return
    for trick in ("/../", "/./", "//", "%2F", "%2f", "%5C", "\\", ";", "#"):
        assert trick not in normal
    assert not normal.endswith(("/..", "/."))


@given(RAW)
def test_waypoint_and_backend_see_the_same_path(raw: str) -> None:
    """The waypoint matches ``normalize_path(raw)`` and forwards it; a backend reading
    either the raw or the forwarded path resolves the same path the waypoint matched."""
    normal = _normalized_or_none(raw)
    if normal is None:
        return
    assert backend_view(normal) == backend_view(raw)


PREFIXES = st.sampled_from(["/", "/public", "/admin", "/public/a", "/a/b"])


@given(raw=RAW, prefix=PREFIXES)
def test_prefix_match_of_the_normalized_path_holds_for_the_backend(raw: str, prefix: str) -> None:
    normal = _normalized_or_none(raw)
    if normal is None or not prefix_matches(prefix, normal):
        return
    assert prefix_matches(prefix, backend_view(normal))


@pytest.mark.parametrize(
    ("method", "authority", "problem"),
    [
        ("GET", "example.com:8080", None),
        ("PROPFIND", "[::1]:80", None),
        ("GET", "", None),
        ("GET /admin", "example.com", "method 'GET /admin' is not an HTTP token"),
        ("GET", "example.com /admin", "authority 'example.com /admin' is not a host[:port]"),
        ("GET", "a@b", "authority 'a@b' is not a host[:port]"),
    ],
)
def test_request_line_problem(method: str, authority: str, problem: str | None) -> None:
    assert request_line_problem(method, authority) == problem
