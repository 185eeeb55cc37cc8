"""Filters: header modifiers, RequestRedirect, URLRewrite, RequestMirror, ordering and
backendRef-level filters."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.model.httproute import PathModifier, PathModifierType
from gatewayapi import Answer, BackendTarget, GatewayParent, Headers, Response
from gatewayapi.filters import HeaderEdit, modify_path, replace_prefix
from gatewayapi.match import prefix_matches
from tests.unit.gatewayapi.helpers import (
    INFRA,
    PARENT,
    backend,
    draws,
    forward,
    gateway,
    listener,
    request,
    respond,
    route,
    tables,
)


def _rule(filters: list[dict[str, Any]], match: str = "/", **rule: Any) -> Any:
    body: dict[str, Any] = {"matches": [{"path": {"value": match}}], "filters": filters, **rule}
    if "backendRefs" not in rule and not any(f["type"] == "RequestRedirect" for f in filters):
        body["backendRefs"] = [backend("web")]
    return tables(route("r", rules=[body]))


# --- header modifiers ----------------------------------------------------------------------

# Spec: HTTPHeaderFilter examples: set overwrites, add appends to existing values
# ("my-header: foo" + add "bar,baz" -> "my-header: foo,bar,baz"), remove drops; names
# are case-insensitive.
HEADER_CASES: list[tuple[dict[str, Any], list[tuple[str, str]], list[tuple[str, str]]]] = [
    (
        {"set": [{"name": "my-header", "value": "bar"}]},
        [("My-Header", "foo")],
        [("my-header", "bar")],
    ),
    ({"set": [{"name": "my-header", "value": "bar"}]}, [], [("my-header", "bar")]),
    (
        {"add": [{"name": "my-header", "value": "bar,baz"}]},
        [("my-header", "foo")],
        [("my-header", "foo,bar,baz")],
    ),
    ({"add": [{"name": "my-header", "value": "bar"}]}, [], [("my-header", "bar")]),
    (
        {"remove": ["my-header1", "MY-HEADER3"]},
        [("my-header1", "foo"), ("my-header2", "bar"), ("my-header3", "baz")],
        [("my-header2", "bar")],
    ),
    (
        {
            "set": [{"name": "x", "value": "1"}],
            "remove": ["y"],
            "add": [{"name": "z", "value": "2"}],
        },
        [("X", "0"), ("X", "00"), ("y", "gone"), ("z", "1")],
        [("x", "1"), ("z", "1,2")],
    ),
]


@pytest.mark.parametrize(("config", "before", "after"), HEADER_CASES)
def test_request_header_modifier(
    config: dict[str, Any], before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    t = _rule([{"type": "RequestHeaderModifier", "requestHeaderModifier": config}])
    sent = forward(t.route(PARENT, request("/", headers=before), rng=draws(0.0)))
    got = [(n.lower(), v) for n, v in sent.request.headers if n.lower() != "host"]
    assert got == after


def test_response_header_modifier() -> None:
    t = _rule(
        [
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {
                    "set": [{"name": "x-set", "value": "s"}],
                    "add": [{"name": "x-add", "value": "a"}],
                    "remove": ["server"],
                },
            }
        ]
    )
    sent = forward(t.route(PARENT, request("/"), rng=draws(0.0)))
    upstream = Response(200, Headers([("Server", "echo"), ("X-Set", "old"), ("x-add", "1")]))
    final = sent.finish(upstream)
    assert final.headers.items() == (("x-set", "s"), ("x-add", "1,a"))


def test_set_cookie_is_never_combined() -> None:
    edit = HeaderEdit(add=(("Set-Cookie", "b=2"),))
    assert edit.apply(Headers([("set-cookie", "a=1")])).get_all("set-cookie") == ("a=1", "b=2")


# --- RequestRedirect -------------------------------------------------------------------------

# Spec: HTTPRequestRedirectFilter: an empty field keeps the request's value; port rules:
# explicit port, else the redirect scheme's well-known port, else the listener port; the
# port is elided for http:80 and https:443. Query strings are kept.
REDIRECTS: list[tuple[dict[str, Any], str, int, str, str]] = [
    ({"scheme": "https"}, "/a?x=1", 80, "example.com", "https://example.com/a?x=1"),
    ({"scheme": "https", "port": 8443}, "/a", 80, "example.com", "https://example.com:8443/a"),
    ({"scheme": "http"}, "/a", 8080, "example.com", "http://example.com/a"),
    ({}, "/a", 8080, "example.com:8080", "http://example.com:8080/a"),
    ({}, "/a", 80, "example.com", "http://example.com/a"),
    ({"port": 80}, "/a", 8080, "example.com", "http://example.com/a"),
    ({"hostname": "other.example.org"}, "/a", 80, "example.com", "http://other.example.org/a"),
    (
        {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}},
        "/a/b?q",
        80,
        "e.com",
        "http://e.com/new?q",
    ),
    (
        {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/xyz"}},
        "/a/b",
        80,
        "e.com",
        "http://e.com/xyz/b",
    ),
]


@pytest.mark.parametrize(("config", "target", "port", "host", "location"), REDIRECTS)
def test_redirect_location(
    config: dict[str, Any], target: str, port: int, host: str, location: str
) -> None:
    gw = gateway(listeners=[listener(port=port, allowed={"namespaces": {"from": "All"}})])
    body = {
        "matches": [{"path": {"value": "/a"}}],
        "filters": [{"type": "RequestRedirect", "requestRedirect": config}],
    }
    t = tables(gw, route("r", rules=[body]))
    answer = respond(
        t.route(GatewayParent(INFRA, "gw", port), request(target, host=host), rng=draws(0.0))
    )
    assert answer.answer is Answer.REDIRECT
    assert answer.response.status == 302
    assert answer.response.headers.get("location") == location


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_status_codes(code: int) -> None:
    t = _rule([{"type": "RequestRedirect", "requestRedirect": {"statusCode": code}}])
    assert respond(t.route(PARENT, request("/"), rng=draws(0.0))).response.status == code


def test_redirect_from_https_listener_keeps_scheme() -> None:
    t = _rule([{"type": "RequestRedirect", "requestRedirect": {"hostname": "b.example.com"}}])
    # The listener port (80 here) is used when no scheme is set; https on 80 shows it.
    answer = respond(t.route(PARENT, request("/x", scheme="https"), rng=draws(0.0)))
    assert answer.response.headers.get("location") == "https://b.example.com:80/x"


# --- URLRewrite --------------------------------------------------------------------------------

# Spec: HTTPPathModifier.replacePrefixMatch, the table of request path / prefix match /
# replacement / modified path.
PREFIX_TABLE = [
    ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
    ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
    ("/foo", "/foo", "/xyz", "/xyz"),
    ("/foo/", "/foo", "/xyz", "/xyz/"),
    ("/foo/bar", "/foo", "", "/bar"),
    ("/foo/", "/foo", "", "/"),
    ("/foo", "/foo", "", "/"),
    ("/foo/", "/foo", "/", "/"),
    ("/foo", "/foo", "/", "/"),
    ("/anything", "/", "/prefix", "/prefix/anything"),
]


@pytest.mark.parametrize(("path", "prefix", "replacement", "result"), PREFIX_TABLE)
def test_replace_prefix_match_table(path: str, prefix: str, replacement: str, result: str) -> None:
    assert replace_prefix(path, prefix, replacement) == result
    t = _rule(
        [
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": replacement}
                },
            }
        ],
        match=prefix,
    )
    sent = forward(t.route(PARENT, request(path + "?k=v"), rng=draws(0.0)))
    assert sent.request.target == result + "?k=v"


def test_rewrite_full_path_and_hostname() -> None:
    t = _rule(
        [
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "hostname": "internal.example.org",
                    "path": {"type": "ReplaceFullPath", "replaceFullPath": "/one"},
                },
            }
        ],
        match="/full",
    )
    sent = forward(t.route(PARENT, request("/full/two?x", host="example.com:8080"), rng=draws(0.0)))
    assert sent.request.target == "/one?x"
    assert sent.request.authority == "internal.example.org"
    assert sent.request.headers.get("host") == "internal.example.org"


def test_filters_run_in_order_and_backend_filters_after_rule_filters() -> None:
    # Spec: HTTPRouteRule.filters SHOULD run in the order specified; HTTPBackendRef
    # filters run only for requests forwarded to that backend.
    t = _rule(
        [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x", "value": "rule"}]},
            },
        ],
        backendRefs=[
            backend(
                "v1",
                weight=1,
                filters=[
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {"add": [{"name": "x", "value": "v1"}]},
                    }
                ],
            ),
            backend("v2", weight=1),
        ],
    )
    to_v1 = forward(t.route(PARENT, request("/"), rng=draws(0.1)))
    assert to_v1.backend == BackendTarget("default", "v1", 8080)
    assert to_v1.request.headers.get("x") == "rule,v1"
    to_v2 = forward(t.route(PARENT, request("/"), rng=draws(0.9)))
    assert to_v2.request.headers.get("x") == "rule"


def test_backend_level_redirect() -> None:
    t = _rule(
        [],
        backendRefs=[
            backend(
                "v1", filters=[{"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}]
            )
        ],
    )
    answer = respond(t.route(PARENT, request("/p"), rng=draws(0.0)))
    assert answer.response.headers.get("location") == "https://example.com/p"


# --- RequestMirror -----------------------------------------------------------------------------


def _mirror(name: str, **share: Any) -> dict[str, Any]:
    return {
        "type": "RequestMirror",
        "requestMirror": {"backendRef": {"name": name, "port": 8080}, **share},
    }


# Spec: HTTPRequestMirrorFilter: percent or fraction of requests; neither means 100%;
# several mirrors on one rule each apply. Draws: the backend first, then one per mirror.
MIRRORS: list[tuple[list[dict[str, Any]], tuple[float, ...], list[str]]] = [
    ([_mirror("v2")], (0.0, 0.999), ["v2"]),
    ([_mirror("v2", percent=50)], (0.0, 0.49), ["v2"]),
    ([_mirror("v2", percent=50)], (0.0, 0.5), []),
    ([_mirror("v2", percent=0)], (0.0, 0.0), []),
    ([_mirror("v2", fraction={"numerator": 1, "denominator": 3})], (0.0, 0.3), ["v2"]),
    ([_mirror("v2", fraction={"numerator": 1, "denominator": 3})], (0.0, 0.34), []),
    ([_mirror("v2"), _mirror("v3", percent=10)], (0.0, 0.5, 0.05), ["v2", "v3"]),
    ([_mirror("v2"), _mirror("v3", percent=10)], (0.0, 0.5, 0.5), ["v2"]),
]


@pytest.mark.parametrize(("filters", "rolls", "mirrored"), MIRRORS)
def test_request_mirror(
    filters: list[dict[str, Any]], rolls: tuple[float, ...], mirrored: list[str]
) -> None:
    t = _rule(filters)
    sent = forward(t.route(PARENT, request("/"), rng=draws(*rolls)))
    assert [m.target.name for m in sent.mirrors] == mirrored
    assert all(m.request == sent.request for m in sent.mirrors)


def test_mirror_to_unresolvable_backend_is_dropped() -> None:
    t = _rule([_mirror("missing"), _mirror("v2")])
    sent = forward(t.route(PARENT, request("/"), rng=draws(0.0, 0.0)))
    assert [m.target.name for m in sent.mirrors] == ["v2"]


def test_mirror_sees_rewritten_request() -> None:
    t = _rule(
        [
            _mirror("v2"),
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {"set": [{"name": "x", "value": "1"}]},
            },
        ]
    )
    sent = forward(t.route(PARENT, request("/"), rng=draws(0.0, 0.0)))
    assert sent.mirrors[0].request.headers.get("x") == "1"


def test_extension_ref_is_never_skipped() -> None:
    # Spec: HTTPRouteFilter.type: an unresolvable custom filter MUST NOT be skipped;
    # requests reaching it get an HTTP error.
    t = _rule(
        [
            {
                "type": "ExtensionRef",
                "extensionRef": {"group": "example.com", "kind": "Auth", "name": "a"},
            }
        ]
    )
    answer = respond(t.route(PARENT, request("/"), rng=draws(0.0)))
    assert answer.answer is Answer.UNSUPPORTED_FILTER and answer.response.status == 500


# --- properties ---------------------------------------------------------------------------------

seg = st.text(alphabet="abcdxyz", min_size=1, max_size=3)
prefixes = st.tuples(st.lists(seg, min_size=1, max_size=3), st.booleans()).map(
    lambda p: "/" + "/".join(p[0]) + ("/" if p[1] else "")
)
suffixes = st.sampled_from(["", "/", "/x", "/x/y", "/x/"])


@given(prefix=prefixes, replacement=prefixes, suffix=suffixes)
def test_replace_prefix_match_round_trips(prefix: str, replacement: str, suffix: str) -> None:
    """Replacing p by q and then q by p gives the original path back, and the rewritten
    path matches q as a PathPrefix."""
    path = prefix.rstrip("/") + suffix
    assert prefix_matches(prefix, path)
    rewritten = replace_prefix(path, prefix, replacement)
    assert prefix_matches(replacement, rewritten)
    assert replace_prefix(rewritten, replacement, prefix) == path


@given(path=st.text(alphabet="/abc", min_size=1, max_size=8), full=prefixes)
def test_replace_full_path_ignores_the_request_path(path: str, full: str) -> None:
    modifier = PathModifier(PathModifierType.REPLACE_FULL_PATH, replace_full_path=full)
    assert modify_path("/" + path, modifier, None) == full
