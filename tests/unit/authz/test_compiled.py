"""The compiled matcher gives the reference evaluator's verdict, always: over generated
policies (every Source, Operation and condition field and its not-form; ALLOW, DENY, AUDIT;
several from/to entries; empty rules) read through the real converter, and generated
requests (with and without identity, unparsable and IPv6 addresses, hosts with ports, L4
only). Plus the evaluator's own Istio cases through the compiled path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.model.authz import AuthorizationPolicy
from authz import Peer, Request, compile_policies, evaluate
from tests.unit.authz.helpers import TD, policy, request
from tests.unit.authz.test_evaluate import CASES

NAMES = ["front", "back", "fr*", "*nt", "*", "evil"]
PRINCIPALS = [f"{TD}/ns/front/sa/web", f"{TD}/ns/front/*", "*/sa/db", "*", f"{TD}/ns/back/sa/db"]
ACCOUNTS = ["front/web", "back/db", "evil/web"]
BLOCKS = ["10.1.0.5", "10.1.0.0/24", "10.0.0.0/8", "10.1.0.7/16", "192.168.0.0/16", "fd00::/8",
          "::1", "0.0.0.0/0", "::/0"]
HOSTS = ["api.shop", "API.Shop:8080", "*.shop", "api*", "*", "*:8080", "[::1]:80"]
PORTS = ["80", "8080", "443", "080"]
METHODS = ["GET", "POST", "P*", "*T", "*", "get"]
PATHS = ["/", "/admin", "/api/*", "*.env", "*", "*/admin"]
HEADER_VALUES = ["v1", "v*", "*1", "*", "V1"]
SOURCE_FIELDS = {
    "principals": PRINCIPALS, "namespaces": NAMES, "serviceAccounts": ACCOUNTS,
    "ipBlocks": BLOCKS, "remoteIpBlocks": BLOCKS,
}
OPERATION_FIELDS = {"hosts": HOSTS, "ports": PORTS, "methods": METHODS, "paths": PATHS}
CONDITIONS = {
    "request.headers[x-a]": HEADER_VALUES, "request.headers[X-B]": HEADER_VALUES,
    "source.ip": BLOCKS, "remote.ip": BLOCKS, "destination.ip": BLOCKS,
    "destination.port": PORTS, "source.namespace": NAMES, "source.principal": PRINCIPALS,
    "connection.sni": ["api.shop", "*.shop", "*"],
}


def _fields(table: dict[str, list[str]]) -> st.SearchStrategy[dict[str, list[str]]]:
    """Some of the fields and their not-forms (at least one), each with 1-3 values."""
    keys = [*table, *(f"not{k[0].upper()}{k[1:]}" for k in table)]

    def values(key: str) -> list[str]:
        base = key[3].lower() + key[4:] if key.startswith("not") and key not in table else key
        return table[base]

    return st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries(
            {k: st.lists(st.sampled_from(values(k)), min_size=1, max_size=3) for k in chosen}))


def _source_ok(source: dict[str, list[str]]) -> bool:
    """The converter refuses serviceAccounts beside principals or namespaces."""
    accounts = {"serviceAccounts", "notServiceAccounts"} & source.keys()
    others = {"principals", "notPrincipals", "namespaces", "notNamespaces"} & source.keys()
    return not (accounts and others)


CONDITION = st.sampled_from(sorted(CONDITIONS)).flatmap(
    lambda key: st.fixed_dictionaries(
        {"key": st.just(key)},
        optional={"values": st.lists(st.sampled_from(CONDITIONS[key]), min_size=1, max_size=3),
                  "notValues": st.lists(st.sampled_from(CONDITIONS[key]), min_size=1,
                                        max_size=3)},
    )).filter(lambda c: "values" in c or "notValues" in c)
RULE = st.fixed_dictionaries({}, optional={
    "from": st.lists(st.fixed_dictionaries(
        {"source": _fields(SOURCE_FIELDS).filter(_source_ok)}), min_size=1, max_size=2),
    "to": st.lists(st.fixed_dictionaries({"operation": _fields(OPERATION_FIELDS)}),
                   min_size=1, max_size=2),
    "when": st.lists(CONDITION, min_size=1, max_size=2),
})


@st.composite
def policies(draw: st.DrawFn) -> list[AuthorizationPolicy]:
    count = draw(st.integers(1, 4))
    return [
        policy(f"p{i}", {"action": draw(st.sampled_from(["ALLOW", "DENY", "AUDIT"])),
                         "rules": draw(st.lists(RULE, max_size=3))})
        for i in range(count)
    ]


IPS = ["10.1.0.5", "10.1.9.9", "10.200.0.1", "192.168.1.1", "fd00::1", "::1", "::ffff:10.1.0.5",
       "not-an-ip", ""]
PEERS = st.one_of(
    st.builds(Peer, st.sampled_from(IPS)),
    st.builds(Peer.of_pod, st.sampled_from(IPS), st.just(TD), st.sampled_from(["front", "back"]),
              st.sampled_from(["web", "db", ""])),
    # Partial identities, which no gate builds but the evaluator accepts.
    st.builds(Peer, st.sampled_from(IPS), st.sampled_from([None, "", f"{TD}/ns/front/sa/web"]),
              st.sampled_from([None, "", "front"]), st.sampled_from([None, "", "web"])),
)
REQUESTS = st.builds(
    Request,
    peer=PEERS,
    destination_ip=st.sampled_from(IPS),
    port=st.sampled_from([80, 8080, 443, 0]),
    host=st.sampled_from(["api.shop", "API.SHOP:8080", "x.shop", "[::1]:80", "[::1]", "",
                          "api.shop:x", "x.shop:8080"]),
    method=st.sampled_from(["GET", "POST", "PUT", "get", ""]),
    path=st.sampled_from(["/", "/admin", "/api/v1", "/x/.env", "/x/admin", ""]),
    headers=st.lists(st.tuples(st.sampled_from(["x-a", "X-B", "x-c"]),
                               st.sampled_from(["v1", "V1", "w1", ""])), max_size=3
                     ).map(Request.headers_of),
    sni=st.sampled_from(["api.shop", "x.shop", ""]),
    l7=st.booleans(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.lists(REQUESTS, min_size=1, max_size=8))
def test_the_compiled_matcher_is_the_reference_evaluator(
        found: list[AuthorizationPolicy], requests: list[Request]) -> None:
    matcher = compile_policies(found)
    for r in requests:
        assert matcher.evaluate(r) == evaluate(found, r), r


ONE_FIELD_RULE = st.one_of(
    _fields(SOURCE_FIELDS).filter(_source_ok).map(lambda s: {"from": [{"source": s}]}),
    _fields(OPERATION_FIELDS).map(lambda o: {"to": [{"operation": o}]}),
    CONDITION.map(lambda c: {"when": [c]}),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["ALLOW", "DENY", "AUDIT"]), ONE_FIELD_RULE,
       st.lists(REQUESTS, min_size=4, max_size=12))
def test_each_field_alone_compiles_to_the_reference(
        action: str, r: dict[str, Any], requests: list[Request]) -> None:
    """One rule of one field group (so that field decides the verdict), many requests."""
    found = [policy("p", {"action": action, "rules": [r]})]
    matcher = compile_policies(found)
    for req in requests:
        assert matcher.evaluate(req) == evaluate(found, req), req


@pytest.mark.parametrize(("name", "r", "req", "matches"), CASES, ids=[c[0] for c in CASES])
def test_the_evaluators_istio_cases_through_the_compiled_matcher(
        name: str, r: dict[str, Any], req: dict[str, Any], matches: bool) -> None:
    found = [policy("p", {"rules": [r]})]
    assert compile_policies(found).evaluate(request(**req)).allowed is matches


def test_audit_names_and_deny_order_are_kept() -> None:
    """The first matching DENY in the order given is named; AUDIT matches ride along on
    every verdict (the compiled verdicts without them are shared, these are not)."""
    found = [policy("audit", {"action": "AUDIT", "rules": [{}]}),
             policy("b-deny", {"action": "DENY", "rules": [{}]}),
             policy("a-deny", {"action": "DENY", "rules": [{}]})]
    verdict = compile_policies(found).evaluate(request())
    assert (verdict.allowed, verdict.policies, verdict.audited) == (
        False, ("shop/b-deny",), ("shop/audit",))
    only_allow = [policy("none", {"rules": []}), policy("get", {"rules": [
        {"to": [{"operation": {"methods": ["GET"]}}]}]})]
    matcher = compile_policies(only_allow)
    assert matcher.evaluate(request(method="POST")).by_allow
    assert matcher.evaluate(request(method="POST")).policies == ("shop/none", "shop/get")
    assert matcher.evaluate(request(method="GET")).policies == ("shop/get",)
