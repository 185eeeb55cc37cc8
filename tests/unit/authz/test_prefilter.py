"""A residual's rules narrowed per request line and prefiltered (``authz.prefilter``) give the
reference evaluator's verdict: over generated policies made of many one-field rules (paths,
headers, methods, hosts, some with a source or a not-form), so that the merged path and
header tests form, hit and miss, with unkeyed rules before and after keyed ones; over
requests on one connection that reuse request lines (the staged rules are kept) and, with
``LINES_KEPT`` 1, requests past the kept lines. The merged patterns are the union of
their parts, read back from the compiled tests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import authz.residual
from agent.model.authz import AuthorizationPolicy
from authz import Peer, Request, compile_policies, evaluate, fastmatch, match, prefilter
from authz.compiled import HEADERS, PATH
from authz.residual import Connection, narrow, pick_headers
from tests.unit.authz.helpers import TD, policy, rule

PATHS = ["/admin", "*/admin", "/internal/*", "*.env", "*", "/svc*", "/", "/svc/item"]
METHODS = ["GET", "POST", "G*", "*"]
HOSTS = ["api.shop", "*.internal", "API.SHOP:8080"]
HEADER_NAMES = ["x-a", "X-B"]
HEADER_VALUES = ["0.*", "*", "v1", "*1"]

ONE_FIELD: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(lambda v, n: rule(operation={"notPaths" if n else "paths": v}),
              st.lists(st.sampled_from(PATHS), min_size=1, max_size=3), st.booleans()),
    st.builds(lambda name, v, n: rule(when=[{"key": f"request.headers[{name}]",
                                             "notValues" if n else "values": v}]),
              st.sampled_from(HEADER_NAMES), st.lists(st.sampled_from(HEADER_VALUES),
                                                      min_size=1, max_size=2),
              st.booleans()),
    st.builds(lambda m, p: rule(operation={"methods": m, "paths": p}),
              st.lists(st.sampled_from(METHODS), min_size=1, max_size=2),
              st.lists(st.sampled_from(PATHS), min_size=1, max_size=2)),
    st.builds(lambda h: rule(operation={"hosts": h}),
              st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2)),
    st.builds(lambda ns, p: rule(source={"namespaces": ns}, operation={"paths": p}),
              st.lists(st.sampled_from(["front", "back"]), min_size=1, max_size=1),
              st.lists(st.sampled_from(PATHS), min_size=1, max_size=2)),
    st.builds(lambda p, name: {"to": [{"operation": {"paths": p}}, {"operation": {
        "methods": ["POST"]}}], "when": [{"key": f"request.headers[{name}]", "values": ["*"]}]},
        st.lists(st.sampled_from(PATHS), min_size=1, max_size=2), st.sampled_from(HEADER_NAMES)),
    st.just({}),  # a rule that matches everything
)


@st.composite
def many_rules(draw: st.DrawFn) -> list[AuthorizationPolicy]:
    count = draw(st.integers(1, 8))
    return [policy(f"p{i}", {"action": draw(st.sampled_from(["DENY", "ALLOW", "AUDIT"])),
                             "rules": draw(st.lists(ONE_FIELD, min_size=1, max_size=2))})
            for i in range(count)]


REQUEST = st.tuples(
    st.sampled_from(["GET", "POST", "get"]),
    st.sampled_from(["api.shop", "API.SHOP:8080", "db.internal", ""]),
    st.sampled_from(["/", "/admin", "/x/admin", "/internal/x", "/internal", "/svc/item",
                     "/svc/item/7", "/a.env", "/ADMIN", "/admin/", ""]),
    st.lists(st.tuples(st.sampled_from([b"x-a", b"X-A", b"x-b", b"x-c"]),
                       st.sampled_from([b"0.9", b"v1", b"1.1", b""])), max_size=3),
)
CALLERS = st.sampled_from([Peer.of_pod("10.2.0.1", TD, "front", "web"),
                           Peer.of_pod("10.2.0.2", TD, "back", "db"), Peer("10.9.9.9")])


def _want(found: list[AuthorizationPolicy], connection: Connection, method: str, host: str,
          path: str, raw: list[tuple[bytes, bytes]]) -> object:
    headers = Request.headers_of([(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw])
    return evaluate(found, Request(connection.peer, connection.destination_ip, connection.port,
                                   host, method, path, headers))


@pytest.mark.parametrize("kept", [authz.residual.LINES_KEPT, 1])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(found=many_rules(), caller=CALLERS, requests=st.lists(REQUEST, min_size=1, max_size=10))
def test_staged_and_prefiltered_rules_are_the_reference_evaluator(
        monkeypatch: pytest.MonkeyPatch, kept: int, found: list[AuthorizationPolicy],
        caller: Peer, requests: list[tuple[str, str, str, list[tuple[bytes, bytes]]]]) -> None:
    monkeypatch.setattr(authz.residual, "LINES_KEPT", kept)
    connection = Connection(caller, "10.1.0.5", 80)
    residual = narrow(compile_policies(found), connection)
    for method, host, path, raw in requests * 2:  # every request line again: stages reused
        headers = pick_headers(raw, residual.header_names)
        assert residual.evaluate(method, host, path, headers) == _want(
            found, connection, method, host, path, raw), (method, host, path, raw)
    assert len(residual._lines) == min(kept, len({(m, h) for m, h, _, _ in requests}))


PATTERNS = st.lists(st.sampled_from(["/a", "/a*", "*/a", "*", "/b", "*.env", "x", ""]),
                    max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.lists(PATTERNS, min_size=1, max_size=4),
       st.sampled_from(["/a", "/a/b", "/b/a", "/b", "x.env", "x", "", "/A"]))
def test_merged_patterns_match_when_any_part_does(parts: list[list[str]], value: str) -> None:
    """Read back from each compiled test (whatever shape ``string_test`` chose), the patterns
    merge into one test that matches exactly when one of the parts' tests does."""
    tests = [fastmatch.string_test(p) for p in parts]
    read = [fastmatch.patterns_of(t) for t in tests]
    assert all(r is not None for r in read)
    merged = fastmatch.patterns_test(fastmatch.merge_patterns(r for r in read if r is not None))
    assert merged(value) == any(match.any_string(p, value) for p in parts)
    split = fastmatch.split_test(fastmatch.merge_patterns(r for r in read if r is not None))
    assert any(part(value) for part in split) == merged(value)
    for test, p in zip(tests, parts, strict=True):
        assert test(value) == match.any_string(p, value)


def test_patterns_of_refuses_what_it_did_not_build() -> None:
    assert fastmatch.patterns_of(str.startswith) is None
    assert fastmatch.patterns_of(frozenset({"a"}).__eq__) is None
    assert fastmatch.patterns_of(fastmatch.host_test(["api"])) is None
    assert fastmatch.header_of(fastmatch.string_test(["a"])) is None
    name, patterns = fastmatch.header_of(fastmatch.header_test("x-a", ["0.*"])) or ("", None)
    assert name == "x-a" and patterns == (False, frozenset(), ("0.",), ())


def _deny_list(found: list[AuthorizationPolicy], method: str = "GET",
               authority: str = "api") -> prefilter.Staged:
    residual = narrow(compile_policies(found), Connection(Peer("10.9.9.9"), "10.1.0.5", 80))
    return residual._line(method, authority).staged[1]


BENCH_LIKE = [
    policy("a-admin", {"action": "DENY", "rules": [rule(operation={"paths": ["*/admin"]})]}),
    policy("b-internal", {"action": "DENY", "rules": [rule(operation={"paths": ["/internal/*"]})]}),
    policy("c-debug", {"action": "DENY", "rules": [
        rule(when=[{"key": "request.headers[X-Debug]", "values": ["*"]}])]}),
    policy("d-trace", {"action": "DENY", "rules": [rule(operation={"methods": ["TRACE"]})]}),
    policy("e-old", {"action": "DENY", "rules": [
        rule(when=[{"key": "request.headers[x-client-version]", "values": ["0.*"]}])]}),
    policy("f-hosts", {"action": "DENY", "rules": [rule(operation={"hosts": ["*.internal"]})]}),
]


def test_the_benchmarks_deny_rules_become_one_path_test_and_two_header_tests() -> None:
    """For a GET to an ordinary host the method and host rules are decided out; the three
    path rules are one merged test, the two header rules one test per name."""
    rules, unkeyed, path_test, header_tests = _deny_list(BENCH_LIKE)
    assert [r[0].key for r in rules] == ["shop/a-admin", "shop/b-internal", "shop/c-debug",
                                         "shop/e-old"]
    assert unkeyed == ()
    assert path_test is not None and path_test("/x/admin") and not path_test("/svc/1")
    assert [name for name, _ in header_tests] == ["x-client-version", "x-debug"]
    trace = _deny_list(BENCH_LIKE, "TRACE")[0]
    assert "shop/d-trace" in [r[0].key for r in trace]
    assert "shop/f-hosts" in [r[0].key for r in _deny_list(BENCH_LIKE, "GET", "a.internal")[0]]


def test_a_rule_without_a_key_is_tested_alone_when_the_prefilter_misses() -> None:
    """A not-form and a source-only rule have no key: when the merged tests miss they are the
    list, in order; when a keyed rule's key holds, the whole list is tested in order, so the
    first matching policy is the one named (not the first keyed one)."""
    found = [
        policy("a-admin", {"action": "DENY", "rules": [rule(operation={"paths": ["/admin"]})]}),
        policy("b-not-svc", {"action": "DENY", "rules": [rule(operation={"notPaths": ["/svc*"]})]}),
        policy("c-env", {"action": "DENY", "rules": [rule(operation={"paths": ["*.env"]})]}),
    ]
    rules, unkeyed, _, _ = _deny_list(found)
    assert [r[0].key for r in unkeyed or ()] == ["shop/b-not-svc"]
    residual = narrow(compile_policies(found), Connection(Peer("10.9.9.9"), "10.1.0.5", 80))
    assert residual.evaluate("GET", "api", "/svc/1").allowed
    # "/x.env" matches b-not-svc (earlier) and c-env: b is named, as the reference names it
    assert residual.evaluate("GET", "api", "/x.env").policies == ("shop/b-not-svc",)
    assert residual.evaluate("GET", "api", "/svc/x.env").policies == ("shop/c-env",)
    assert residual.evaluate("GET", "api", "/admin").policies == ("shop/a-admin",)


def test_one_keyed_rule_gets_no_prefilter() -> None:
    staged = _deny_list(BENCH_LIKE[:1])
    assert staged[1] is None and len(staged[0]) == 1


def test_the_facts_the_prefilter_reads_are_the_path_and_headers() -> None:
    """The staged lists are tested on facts whose method and host slots are empty: no test
    left may read them."""
    for staged in narrow(compile_policies(BENCH_LIKE), Connection(
            Peer("10.9.9.9"), "10.1.0.5", 80))._line("GET", "api").staged:
        for _, fact, _, _, fact2, _, _, more in staged[0]:
            assert {fact, fact2} <= {0, PATH, HEADERS} and more is None


@pytest.mark.parametrize(("path", "raw", "denied_by"), [
    ("", [(b"x-debug", b"")], ()),  # empty is absent: "*" (presence) does not match
    ("/x", [(b"x-debug", b""), (b"X-Debug", b"1")], ("shop/b-debug",)),  # a second field
    ("/x", [(b"x-debug", b"")], ("shop/c-path",)),
])
def test_an_empty_value_is_absent_for_a_presence_match(
        path: str, raw: list[tuple[bytes, bytes]], denied_by: tuple[str, ...]) -> None:
    found = [
        policy("a-old", {"action": "DENY", "rules": [
            rule(when=[{"key": "request.headers[x-old]", "values": ["*"]}])]}),
        policy("b-debug", {"action": "DENY", "rules": [
            rule(when=[{"key": "request.headers[x-debug]", "values": ["*"]}])]}),
        policy("c-path", {"action": "DENY", "rules": [rule(operation={"paths": ["*"]})]}),
    ]
    connection = Connection(Peer("10.9.9.9"), "10.1.0.5", 80)
    residual = narrow(compile_policies(found), connection)
    assert residual._line("GET", "api")._denies is not None  # the inline path is the one tested
    verdict = residual.evaluate("GET", "api", path, pick_headers(raw, residual.header_names))
    assert verdict == _want(found, connection, "GET", "api", path, raw)
    assert verdict.policies == denied_by and verdict.allowed == (not denied_by)
