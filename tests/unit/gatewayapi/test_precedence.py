"""Matching precedence, one table per rule of the spec's order, and a property that the
index picks what a direct, linear reading of the spec picks.

Spec: HTTPRouteRule.matches ("Proxy or Load Balancer routing configuration generated
from HTTPRoutes MUST prioritize matches based on the following criteria...") and
HTTPRouteSpec.hostnames (hostname precedence), Listener.allowedRoutes (oldest route,
then namespace/name).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewayapi.hostnames import matches as host_matches
from gatewayapi.hostnames import specificity
from gatewayapi.match import parse_query, prefix_key, prefix_matches
from tests.unit.gatewayapi.helpers import backend, gateway, listener, picked, route, tables


def _r(
    name: str,
    match: dict[str, Any],
    namespace: str = "default",
    created: str = "2024-01-01T00:00:00Z",
    hostnames: tuple[str, ...] = (),
) -> Any:
    return route(
        name,
        namespace=namespace,
        created=created,
        hostnames=hostnames,
        rules=[{"matches": [match], "backendRefs": [backend("web")]}],
    )


def _p(kind: str, value: str) -> dict[str, Any]:
    return {"path": {"type": kind, "value": value}}


# Spec: "Exact" path match beats any "Prefix" path match.
# Spec: "Prefix" path match with the largest number of characters wins next.
# Tulle (implementation-specific): RegularExpression ranks after Exact, before PathPrefix.
PATH_PRECEDENCE = [
    ("/foo", [("a", _p("PathPrefix", "/foo")), ("b", _p("Exact", "/foo"))], "b"),
    ("/foo/bar", [("a", _p("PathPrefix", "/foo")), ("b", _p("PathPrefix", "/foo/bar"))], "b"),
    ("/foo/bar/baz", [("a", _p("PathPrefix", "/foo/bar")), ("b", _p("PathPrefix", "/"))], "a"),
    ("/foo", [("a", _p("PathPrefix", "/")), ("b", _p("RegularExpression", "/f.*"))], "b"),
    ("/foo", [("a", _p("RegularExpression", "/f.*")), ("b", _p("Exact", "/foo"))], "b"),
    ("/foo", [("a", _p("RegularExpression", "/.*")), ("b", _p("RegularExpression", "/fo+"))], "b"),
    # A longer prefix that does not match never wins.
    ("/foo/baz", [("a", _p("PathPrefix", "/foo/bar")), ("b", _p("PathPrefix", "/foo"))], "b"),
    # The trailing slash of a prefix is ignored, also for its length.
    ("/foo/x", [("a", _p("PathPrefix", "/foo/")), ("b", _p("PathPrefix", "/foo"))], "a"),
]


@pytest.mark.parametrize(("target", "routes", "winner"), PATH_PRECEDENCE)
def test_path_precedence(
    target: str, routes: list[tuple[str, dict[str, Any]]], winner: str
) -> None:
    t = tables(*(_r(name, m) for name, m in routes))
    assert picked(t, target) == f"default/{winner}#0"


# Spec: after the path: method match, then largest number of header matches, then
# largest number of query param matches.
MATCH_PRECEDENCE: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"method": "GET"}, {"headers": [{"name": "h1", "value": "1"}]}, "a"),
    (
        {"headers": [{"name": "h1", "value": "1"}, {"name": "h2", "value": "2"}]},
        {"headers": [{"name": "h1", "value": "1"}]},
        "a",
    ),
    (
        {"headers": [{"name": "h1", "value": "1"}]},
        {"queryParams": [{"name": "q", "value": "1"}]},
        "a",
    ),
    (
        {"queryParams": [{"name": "q", "value": "1"}, {"name": "r", "value": "2"}]},
        {"queryParams": [{"name": "q", "value": "1"}]},
        "a",
    ),
    # The path comes first: an Exact path with nothing else beats a prefix with a method.
    ({"path": {"type": "Exact", "value": "/x"}}, {"path": {"value": "/x"}, "method": "GET"}, "a"),
    # Longest prefix beats method and headers.
    (
        {"path": {"value": "/x"}},
        {"path": {"value": "/"}, "method": "GET", "headers": [{"name": "h1", "value": "1"}]},
        "a",
    ),
]


@pytest.mark.parametrize(("first", "second", "winner"), MATCH_PRECEDENCE)
def test_match_precedence(first: dict[str, Any], second: dict[str, Any], winner: str) -> None:
    headers = [("h1", "1"), ("h2", "2")]
    for order in ((("a", first), ("b", second)), (("b", second), ("a", first))):
        t = tables(*(_r(name, m) for name, m in order))
        assert picked(t, "/x?q=1&r=2", "GET", headers=headers) == f"default/{winner}#0"


# Spec: ties across routes go to the oldest creationTimestamp, then to the first
# "{namespace}/{name}" in alphabetical order.
def test_oldest_route_wins_ties() -> None:
    t = tables(
        _r("a", {}, created="2024-01-02T00:00:00Z"),
        _r("z", {}, created="2024-01-01T00:00:00Z"),
    )
    assert picked(t, "/") == "default/z#0"


def test_alphabetical_namespace_name_breaks_equal_age() -> None:
    t = tables(_r("b", {}, namespace="a"), _r("a", {}, namespace="b"), _r("c", {}, namespace="a"))
    assert picked(t, "/") == "a/b#0"


def test_age_and_name_only_break_ties_of_specificity() -> None:
    t = tables(_r("old", {}, created="2020-01-01T00:00:00Z"), _r("new", _p("PathPrefix", "/x")))
    assert picked(t, "/x") == "default/new#0"


# Spec: within a route, the FIRST matching rule (in list order) wins ties.
def test_first_rule_wins_within_route() -> None:
    t = tables(
        route(
            "r",
            rules=[
                {"matches": [_p("PathPrefix", "/a")], "backendRefs": [backend("v1")]},
                {"matches": [_p("PathPrefix", "/a")], "backendRefs": [backend("v2")]},
                {"matches": [_p("PathPrefix", "/a/b")], "backendRefs": [backend("v3")]},
            ],
        )
    )
    assert picked(t, "/a") == "default/r#0"
    # ...but only among equally specific matches: the longer prefix of rule 2 wins.
    assert picked(t, "/a/b") == "default/r#2"


# Spec: HTTPRouteSpec.hostnames: precedence to the route with the most characters in a
# matching non-wildcard hostname, then in a matching hostname; GatewayRouteHostname
# IntersectionPrecedence: the route's own hostnames decide, not the intersection.
HOST_PRECEDENCE = [
    ("foo.example.com", [("a", ("*.example.com",)), ("b", ("foo.example.com",))], "b"),
    ("x.foo.example.com", [("a", ("*.example.com",)), ("b", ("*.foo.example.com",))], "b"),
    ("foo.example.com", [("a", ()), ("b", ("*.example.com",))], "b"),
    ("bar.example.com", [("a", ("*.example.com",)), ("b", ("foo.example.com",))], "a"),
    ("other.org", [("a", ()), ("b", ("foo.example.com",))], "a"),
]


@pytest.mark.parametrize(("host", "routes", "winner"), HOST_PRECEDENCE)
def test_hostname_precedence(
    host: str, routes: list[tuple[str, tuple[str, ...]]], winner: str
) -> None:
    t = tables(*(_r(name, {}, hostnames=h) for name, h in routes))
    assert picked(t, "/", host=host) == f"default/{winner}#0"


def test_hostname_precedence_comes_before_path() -> None:
    t = tables(
        _r("wild", _p("Exact", "/x"), hostnames=("*.example.com",)),
        _r("exact", _p("PathPrefix", "/"), hostnames=("foo.example.com",)),
    )
    assert picked(t, "/x", host="foo.example.com") == "default/exact#0"


def test_less_specific_hostname_serves_when_the_specific_route_has_no_match() -> None:
    t = tables(
        _r("wild", _p("PathPrefix", "/other"), hostnames=("*.example.com",)),
        _r("exact", _p("PathPrefix", "/only"), hostnames=("foo.example.com",)),
    )
    assert picked(t, "/other", host="foo.example.com") == "default/wild#0"


def test_route_hostname_precedence_within_a_wildcard_listener() -> None:
    # Both routes intersect the listener as "*.example.com"; the one that said so itself
    # is more specific than the one without hostnames.
    gw = gateway(
        listeners=[listener(hostname="*.example.com", allowed={"namespaces": {"from": "All"}})]
    )
    t = tables(gw, _r("none", _p("PathPrefix", "/x")), _r("wild", {}, hostnames=("*.example.com",)))
    assert picked(t, "/x", host="a.example.com") == "default/wild#0"


# --- the index against a direct reading of the spec -------------------------------------

HOSTS = ["a.example.com", "b.example.com", "x.a.example.com", "example.com"]
ROUTE_HOSTS = ["a.example.com", "*.example.com", "*.a.example.com", "example.com"]
PATH_VALUES = ["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c"]
REQ_PATHS = ["/", "/a", "/a/", "/a/b", "/ab", "/a/b/c", "/a/bc", "/z"]
REGEXES = ["/a.*", "/a/b", "/[ab]+"]

match_strategy = st.fixed_dictionaries(
    {},
    optional={
        "path": st.one_of(
            st.builds(lambda v: {"type": "Exact", "value": v}, st.sampled_from(PATH_VALUES)),
            st.builds(lambda v: {"type": "PathPrefix", "value": v}, st.sampled_from(PATH_VALUES)),
            st.builds(
                lambda v: {"type": "RegularExpression", "value": v}, st.sampled_from(REGEXES)
            ),
        ),
        "method": st.sampled_from(["GET", "POST"]),
        "headers": st.lists(
            st.builds(
                lambda n, v: {"name": n, "value": v},
                st.sampled_from(["h1", "H2"]),
                st.sampled_from(["1", "2"]),
            ),
            max_size=2,
            unique_by=lambda h: h["name"].lower(),
        ),
        "queryParams": st.lists(
            st.builds(
                lambda n, v: {"name": n, "value": v},
                st.sampled_from(["q", "r"]),
                st.sampled_from(["1", "2"]),
            ),
            max_size=2,
            unique_by=lambda q: q["name"],
        ),
    },
)
rule_strategy = st.builds(
    lambda ms: {"matches": ms, "backendRefs": [{"name": "web", "port": 8080}]},
    st.lists(match_strategy, min_size=1, max_size=3),
)
route_strategy = st.tuples(
    st.sampled_from(["ns1", "ns2"]),
    st.integers(min_value=1, max_value=3),
    st.lists(st.sampled_from(ROUTE_HOSTS), max_size=2, unique=True),
    st.lists(rule_strategy, min_size=1, max_size=3),
)
request_strategy = st.tuples(
    st.sampled_from(HOSTS),
    st.sampled_from(REQ_PATHS),
    st.sampled_from(["GET", "POST"]),
    st.lists(st.tuples(st.sampled_from(["h1", "h2"]), st.sampled_from(["1", "2"])), max_size=2),
    st.sampled_from(["", "q=1", "q=2&r=1", "r=2&q=1"]),
)


def _path_rank(path: dict[str, Any]) -> tuple[int, int]:
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if kind == "Exact":
        return (0, 0)
    if kind == "RegularExpression":
        return (1, -len(value))
    return (2, -len(prefix_key(value)))


def _path_ok(path: dict[str, Any], request_path: str) -> bool:
    kind, value = path.get("type", "PathPrefix"), path.get("value", "/")
    if kind == "Exact":
        return value == request_path
    if kind == "RegularExpression":
        return re.fullmatch(value, request_path) is not None
    return prefix_matches(value, request_path)


def reference(
    routes: list[tuple[str, str, int, list[str], list[dict[str, Any]]]],
    host: str,
    path: str,
    method: str,
    headers: list[tuple[str, str]],
    query: str,
) -> str | None:
    """The spec, read literally, as a linear scan over every (route, rule, match)."""
    header_values: dict[str, list[str]] = {}
    for name, value in headers:
        header_values.setdefault(name.lower(), []).append(value)
    params = parse_query(query)
    best: tuple[Any, ...] | None = None
    answer = None
    for ns, name, age, hostnames, rules in routes:
        if hostnames:
            keys = [specificity(h) for h in hostnames if host_matches(h, host)]
            if not keys:
                continue
            host_key = max(keys)
        else:
            host_key = (0, 0)
        for ri, rule in enumerate(rules):
            for mi, m in enumerate(rule["matches"]):
                if not _path_ok(m.get("path", {}), path):
                    continue
                if "method" in m and m["method"] != method:
                    continue
                hs = m.get("headers", [])
                if any(
                    ",".join(header_values.get(h["name"].lower(), ["\0"])) != h["value"] for h in hs
                ):
                    continue
                qs = m.get("queryParams", [])
                if any(params.get(q["name"]) != q["value"] for q in qs):
                    continue
                key = (
                    (-host_key[0], -host_key[1]),
                    _path_rank(m.get("path", {})),
                    "method" not in m,
                    -len(hs),
                    -len(qs),
                    age,
                    f"{ns}/{name}",
                    ri,
                    mi,
                )
                if best is None or key < best:
                    best, answer = key, f"{ns}/{name}#{ri}"
    return answer


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(route_strategy, min_size=1, max_size=4),
    requests=st.lists(request_strategy, min_size=1, max_size=6),
)
def test_index_agrees_with_linear_spec_reading(
    specs: list[tuple[str, int, list[str], list[dict[str, Any]]]],
    requests: list[tuple[str, str, str, list[tuple[str, str]], str]],
) -> None:
    routes = [(ns, f"r{i}", age, hosts, rules) for i, (ns, age, hosts, rules) in enumerate(specs)]
    objects = [
        route(name, namespace=ns, hostnames=hosts, rules=rules, created=f"2024-01-0{age}T00:00:00Z")
        for ns, name, age, hosts, rules in routes
    ]
    t = tables(*objects)
    for host, path, method, headers, query in requests:
        target = f"{path}?{query}" if query else path
        expected = reference(routes, host, path, method, headers, query)
        assert picked(t, target, method, host=host, headers=headers) == expected
