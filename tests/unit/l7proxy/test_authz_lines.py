"""The gate over issue 14's benchmark policies (``bench.l7.policyset``, every rule left one
path or header test: ``authz.prefilter.Line``'s inline decision) against the reference
evaluator, for an attacker's spellings: a dot-segment or an encoded character that
normalizes to a denied path, an encoded slash (refused), another case, a trailing slash,
a denied header value repeated or hidden behind an allowed one, a request that two DENY
rules match (the first by name is named), and requests that vary only in path while their
read header fields repeat (decoded once: ``AuthzGate._pick``)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import l7proxy.authz
from agent.model.authz import AuthorizationPolicy
from agent.model.convert import from_dict
from bench.l7 import policyset
from gatewayapi import GatewayParent
from l7proxy.authz import AuthzGate, Call
from tests.unit.l7proxy.test_authz_memo import PODS
from tests.unit.l7proxy.test_authz_reference import _reference

GATEWAY = GatewayParent("shop", "gw", 8080)


def _policies() -> list[AuthorizationPolicy]:
    """The benchmark's 20 policies, on the test's Gateway ``shop/gw``."""
    out = []
    for doc in policyset.authorization_policies():
        doc["metadata"]["namespace"] = "shop"
        doc["spec"]["targetRefs"][0]["name"] = "gw"
        found = from_dict(doc)
        assert isinstance(found, AuthorizationPolicy)
        out.append(found)
    return out


POLICIES = _policies()
CALLER = "10.9.9.9"  # no pod: no identity (the loadgen rule does not apply; others do)


def _gate() -> AuthzGate:
    gate = AuthzGate("cluster.local")
    gate.swap(POLICIES, PODS)
    return gate


def _call(target: str, headers: list[tuple[bytes, bytes]] | None = None,
          method: str = "GET", authority: str = "api.shop", client: str = CALLER) -> Call:
    return Call((client, 40000), GATEWAY, (("10.1.0.5", 80),), method, authority, target,
                headers or [])


def _decided(gate: AuthzGate, call: Call) -> tuple[bool, frozenset[str]]:
    verdict = gate.check(call)
    return (True, frozenset()) if verdict is None or verdict.allowed else (
        False, frozenset(verdict.policies))


HEALTH = "shop/allow-health"


@pytest.mark.parametrize(("target", "headers", "want"), [
    ("/healthz", [], (True, frozenset())),
    ("/x/../healthz", [], (True, frozenset())),  # allowed by allow-health, once normalized
    ("/svc/x/../admin", [], (False, {"shop/deny-admin-paths"})),
    ("/svc/%61dmin", [], (False, {"shop/deny-admin-paths"})),  # %61 is "a"
    ("/svc%2Fadmin", [], None),  # an encoded slash is refused: denied by every policy
    ("/svc/ADMIN", [], None),  # paths are case-sensitive: no DENY; no ALLOW for this caller
    ("/healthz/", [], None),  # "/healthz/" is not "/healthz"
    ("/x/.env", [], (False, {"shop/deny-dotfiles"})),
    ("/internal/admin", [], (False, {"shop/deny-admin-paths"})),  # two DENY: first by name
    ("/healthz", [(b"x-client-version", b"1.0"), (b"X-Client-Version", b"0.9")],
     (False, {"shop/deny-old-clients"})),  # the denied value behind an allowed one
    ("/healthz", [(b"X-DEBUG", b"")], (True, frozenset())),  # empty: absent for "*"
    # deny-dotfiles (a path rule) and deny-debug-header (a header rule, earlier by name)
    ("/admin.git", [(b"x-debug", b"1")], (False, {"shop/deny-debug-header"})),
])
def test_an_attackers_spelling_gets_the_reference_verdict(
        target: str, headers: list[tuple[bytes, bytes]],
        want: tuple[bool, set[str]] | None) -> None:
    gate = _gate()
    call = _call(target, headers)
    got = _decided(gate, call)
    assert got == _reference(POLICIES, call)
    if want is not None:
        assert got == (want[0], frozenset(want[1]))
    else:
        assert not got[0]
    assert _decided(gate, call) == got  # a second time (line kept, memo)


def test_the_benchmark_lines_take_the_inline_decision() -> None:
    """Not a verdict: that the tests above exercised ``Line``'s inline path."""
    gate = _gate()
    gate.check(_call("/healthz"))
    residual = gate._residual_for(GATEWAY, "10.1.0.5", 80, CALLER, "")
    assert residual is not None
    assert residual._line("GET", "api.shop")._denies is not None


TARGETS = st.sampled_from([
    "/svc/1", "/svc/1/admin", "/svc/%2e%2e/admin", "/svc//admin", "/svc/./admin",
    "/internal/x", "/Internal/x", "/healthz", "/readyz?x=1", "/x.ENV", "/x.env/", "/a%2F",
    "/svc/%41dmin", "/metrics", "*",
])
FIELDS = st.lists(st.tuples(
    st.sampled_from([b"x-client-version", b"X-Client-Version", b"x-debug", b"x-canary",
                     b"x-tenant"]),
    st.sampled_from([b"0.1", b"1.2", b"", b"v99", b"V99"])), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(TARGETS, FIELDS, st.sampled_from(["GET", "POST", "HEAD", "TRACE"]),
                          st.sampled_from(["api.shop", "admin.example.com", "x.internal:80"]),
                          st.sampled_from([CALLER, "10.2.0.1", "10.2.0.2"])),
                min_size=1, max_size=12))
def test_the_benchmark_policies_decide_as_the_reference(
        requests: list[tuple[str, list[tuple[bytes, bytes]], str, str, str]]) -> None:
    """Through a memo of 2 that a fill bypasses (so most are judged) and a pick memory of 2."""
    gate = _gate()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(l7proxy.authz, "VERDICTS_KEPT", 2)
        patch.setattr(l7proxy.authz, "VERDICTS_BYPASSED", 3)
        patch.setattr(l7proxy.authz, "PICKED_KEPT", 2)
        for target, fields, method, authority, client in requests * 2:
            call = _call(target, fields, method, authority, client)
            assert _decided(gate, call) == _reference(POLICIES, call), call


def test_read_fields_are_decoded_once_and_long_ones_every_time() -> None:
    gate = _gate()
    old = [(b"x-client-version", b"0.1")]
    for n in range(3):  # paths that never repeat, the same read field
        assert not _decided(gate, _call(f"/svc/{n}", old))[0]
    assert len(gate._picked) == 1
    long = [(b"x-client-version", b"0." + b"1" * l7proxy.authz.PICKED_FIELD_CHARS)]
    assert _decided(gate, _call("/svc/9", long)) == (False, frozenset({"shop/deny-old-clients"}))
    assert len(gate._picked) == 1  # not kept
    gate.swap(POLICIES, PODS)
    assert gate._picked == {}
