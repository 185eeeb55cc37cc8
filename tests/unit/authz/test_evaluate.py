"""The evaluator against Istio's documented semantics (istio.io, reference/config/security/
authorization-policy and .../conditions): every field and its not-form, empty rules, and the
DENY > ALLOW > AUDIT ordering. Each case: one policy (or several), one request, the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from authz import evaluate, needs_l7
from tests.unit.authz.helpers import policy, request, rule


def allowed_by_allow(r: dict[str, Any], **req: Any) -> bool:
    """Whether an ALLOW policy with the one rule ``r`` lets the request through."""
    return evaluate([policy("p", {"rules": [r]})], request(**req)).allowed


# (rule, request fields, matches?)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # --- from.source ---
    ("principal exact", rule(source={"principals": ["cluster.local/ns/front/sa/web"]}), {}, True),
    ("principal other sa", rule(source={"principals": ["cluster.local/ns/front/sa/web"]}), {"sa": "db"}, False),
    ("principal prefix", rule(source={"principals": ["cluster.local/ns/front/*"]}), {}, True),
    ("principal suffix", rule(source={"principals": ["*/sa/web"]}), {}, True),
    ("principal presence", rule(source={"principals": ["*"]}), {}, True),
    ("principal presence, no identity", rule(source={"principals": ["*"]}), {"ns": None}, False),
    ("notPrincipals presence, no identity", rule(source={"notPrincipals": ["*"]}), {"ns": None}, True),
    ("notPrincipals hit", rule(source={"notPrincipals": ["*/sa/web"]}), {}, False),
    ("notPrincipals miss", rule(source={"notPrincipals": ["*/sa/db"]}), {}, True),
    ("namespace", rule(source={"namespaces": ["front"]}), {}, True),
    ("namespace other", rule(source={"namespaces": ["front"]}), {"ns": "evil"}, False),
    ("namespace prefix", rule(source={"namespaces": ["fr*"]}), {}, True),
    ("namespace any of", rule(source={"namespaces": ["a", "front"]}), {}, True),
    ("notNamespaces hit", rule(source={"notNamespaces": ["front"]}), {}, False),
    ("notNamespaces miss", rule(source={"notNamespaces": ["evil"]}), {}, True),
    ("namespace, no identity", rule(source={"namespaces": ["*"]}), {"ns": None}, False),
    ("serviceAccount", rule(source={"serviceAccounts": ["front/web"]}), {}, True),
    ("serviceAccount same name other ns", rule(source={"serviceAccounts": ["front/web"]}), {"ns": "evil"}, False),
    ("notServiceAccounts hit", rule(source={"notServiceAccounts": ["front/web"]}), {}, False),
    ("notServiceAccounts miss", rule(source={"notServiceAccounts": ["front/db"]}), {}, True),
    ("ipBlocks cidr", rule(source={"ipBlocks": ["10.1.0.0/16"]}), {}, True),
    ("ipBlocks single ip", rule(source={"ipBlocks": ["10.1.0.5"]}), {}, True),
    ("ipBlocks miss", rule(source={"ipBlocks": ["10.9.0.0/16"]}), {}, False),
    ("notIpBlocks hit", rule(source={"notIpBlocks": ["10.1.0.0/24"]}), {}, False),
    ("notIpBlocks miss", rule(source={"notIpBlocks": ["10.9.0.0/16"]}), {}, True),
    ("remoteIpBlocks is the peer", rule(source={"remoteIpBlocks": ["10.1.0.5/32"]}), {}, True),
    ("notRemoteIpBlocks hit", rule(source={"notRemoteIpBlocks": ["10.1.0.5/32"]}), {}, False),
    ("source fields AND", rule(source={"namespaces": ["front"], "ipBlocks": ["10.9.0.0/16"]}), {}, False),
    ("field and its not-form", rule(source={"namespaces": ["*"], "notNamespaces": ["front"]}), {}, False),
    # --- to.operation ---
    ("method", rule(operation={"methods": ["GET"]}), {}, True),
    ("method other", rule(operation={"methods": ["GET"]}), {"method": "POST"}, False),
    ("method case-sensitive", rule(operation={"methods": ["get"]}), {}, False),
    ("notMethods hit", rule(operation={"notMethods": ["POST"]}), {"method": "POST"}, False),
    ("notMethods miss", rule(operation={"notMethods": ["POST"]}), {}, True),
    ("path exact", rule(operation={"paths": ["/admin"]}), {"path": "/admin"}, True),
    ("path exact is not prefix", rule(operation={"paths": ["/admin"]}), {"path": "/admin/x"}, False),
    ("path prefix", rule(operation={"paths": ["/admin/*"]}), {"path": "/admin/users"}, True),
    ("path prefix other", rule(operation={"paths": ["/admin/*"]}), {"path": "/public"}, False),
    ("path suffix", rule(operation={"paths": ["*.png"]}), {"path": "/img/a.png"}, True),
    ("path presence", rule(operation={"paths": ["*"]}), {"path": "/x"}, True),
    ("notPaths hit", rule(operation={"notPaths": ["/healthz"]}), {"path": "/healthz"}, False),
    ("notPaths miss", rule(operation={"notPaths": ["/healthz"]}), {"path": "/x"}, True),
    ("host case-insensitive", rule(operation={"hosts": ["API.shop"]}), {}, True),
    ("host with port in request", rule(operation={"hosts": ["api.shop"]}), {"host": "api.shop:8080"}, True),
    ("host suffix", rule(operation={"hosts": ["*.shop"]}), {}, True),
    ("host other", rule(operation={"hosts": ["db.shop"]}), {}, False),
    ("notHosts hit", rule(operation={"notHosts": ["api.shop"]}), {}, False),
    ("port", rule(operation={"ports": ["8080"]}), {}, True),
    ("port other", rule(operation={"ports": ["9090"]}), {}, False),
    ("notPorts hit", rule(operation={"notPorts": ["8080"]}), {}, False),
    ("notPorts miss", rule(operation={"notPorts": ["9090"]}), {}, True),
    ("operation fields AND", rule(operation={"methods": ["GET"], "paths": ["/a"]}), {"path": "/b"}, False),
    # --- when ---
    ("header value", rule(when=[{"key": "request.headers[X-Token]", "values": ["abc"]}]), {"headers": [("x-token", "abc")]}, True),
    ("header name case-insensitive", rule(when=[{"key": "request.headers[x-token]", "values": ["abc"]}]), {"headers": [("X-Token", "abc")]}, True),
    ("header prefix", rule(when=[{"key": "request.headers[x-token]", "values": ["ab*"]}]), {"headers": [("x-token", "abc")]}, True),
    ("header absent", rule(when=[{"key": "request.headers[x-token]", "values": ["*"]}]), {}, False),
    ("header notValues hit", rule(when=[{"key": "request.headers[x-token]", "notValues": ["abc"]}]), {"headers": [("x-token", "abc")]}, False),
    ("header notValues, absent", rule(when=[{"key": "request.headers[x-token]", "notValues": ["abc"]}]), {}, True),
    ("source.ip", rule(when=[{"key": "source.ip", "values": ["10.1.0.0/16"]}]), {}, True),
    ("remote.ip not", rule(when=[{"key": "remote.ip", "notValues": ["10.1.0.0/16"]}]), {}, False),
    ("destination.ip", rule(when=[{"key": "destination.ip", "values": ["10.2.0.9"]}]), {}, True),
    ("destination.port", rule(when=[{"key": "destination.port", "values": ["8080"]}]), {}, True),
    ("source.namespace", rule(when=[{"key": "source.namespace", "values": ["front"]}]), {}, True),
    ("source.principal", rule(when=[{"key": "source.principal", "values": ["cluster.local/ns/front/sa/db"]}]), {}, False),
    ("connection.sni", rule(when=[{"key": "connection.sni", "values": ["api.shop"]}]), {"sni": "api.shop"}, True),
    ("every when ANDs", rule(when=[{"key": "source.namespace", "values": ["front"]}, {"key": "destination.port", "values": ["1"]}]), {}, False),
    # --- the rule's parts together ---
    ("from and to AND", rule(source={"namespaces": ["front"]}, operation={"methods": ["POST"]}), {}, False),
    ("empty rule matches all", {}, {"ns": None, "method": "DELETE"}, True),
]


@pytest.mark.parametrize(("case", "r", "req", "matches"), CASES, ids=[c[0] for c in CASES])
def test_allow_rule_field_by_field(case: str, r: dict[str, Any], req: dict[str, Any], matches: bool) -> None:
    assert allowed_by_allow(r, **req) is matches


@pytest.mark.parametrize(("case", "r", "req", "matches"), CASES, ids=[c[0] for c in CASES])
def test_deny_rule_field_by_field(case: str, r: dict[str, Any], req: dict[str, Any], matches: bool) -> None:
    """The same match, under DENY: a match denies, no match allows (no ALLOW in force)."""
    verdict = evaluate([policy("d", {"action": "DENY", "rules": [r]})], request(**req))
    assert verdict.allowed is not matches
    assert verdict.policies == (("shop/d",) if matches else ())


def test_several_from_and_to_entries_or_together() -> None:
    r = {
        "from": [{"source": {"namespaces": ["x"]}}, {"source": {"namespaces": ["front"]}}],
        "to": [{"operation": {"paths": ["/a"]}}, {"operation": {"paths": ["/b"]}}],
    }
    assert allowed_by_allow(r, path="/b")
    assert not allowed_by_allow(r, path="/c")


def test_no_policy_allows() -> None:
    assert evaluate([], request()).allowed


def test_allow_without_rules_denies_everything() -> None:
    """Istio: "rules ... If not set, the match will never occur" -- an ALLOW policy with an
    empty spec is a deny-all for what it selects; ``rules: [{}]`` is an allow-all."""
    verdict = evaluate([policy("deny-all", {})], request())
    assert not verdict.allowed and verdict.policies == ("shop/deny-all",)
    assert evaluate([policy("allow-all", {"rules": [{}]})], request()).allowed


def test_deny_without_rules_matches_nothing() -> None:
    assert evaluate([policy("d", {"action": "DENY"})], request()).allowed


def test_deny_wins_over_a_matching_allow() -> None:
    policies = [
        policy("allow-all", {"rules": [{}]}),
        policy("no-admin", {"action": "DENY", "rules": [rule(operation={"paths": ["/admin*"]})]}),
    ]
    verdict = evaluate(policies, request(path="/admin/x"))
    assert not verdict.allowed and verdict.policies == ("shop/no-admin",) and not verdict.by_allow
    assert evaluate(policies, request(path="/x")).policies == ("shop/allow-all",)


def test_when_allow_policies_exist_one_must_match() -> None:
    policies = [
        policy("a", {"rules": [rule(source={"namespaces": ["a"]})]}),
        policy("b", {"rules": [rule(source={"namespaces": ["b"]})]}),
    ]
    assert evaluate(policies, request(ns="b")).policies == ("shop/b",)
    verdict = evaluate(policies, request(ns="front"))
    assert not verdict.allowed and verdict.policies == ("shop/a", "shop/b") and verdict.by_allow


def test_audit_only_records() -> None:
    audit = policy("watch", {"action": "AUDIT", "rules": [rule(operation={"methods": ["POST"]})]})
    verdict = evaluate([audit], request(method="POST"))
    assert verdict.allowed and verdict.audited == ("shop/watch",)
    assert evaluate([audit], request(method="GET")).audited == ()
    # AUDIT is no ALLOW: it does not switch on default-deny ...
    # ... and it is recorded even when a DENY decides.
    deny = policy("d", {"action": "DENY", "rules": [{}]})
    verdict = evaluate([audit, deny], request(method="POST"))
    assert not verdict.allowed and verdict.audited == ("shop/watch",)


def test_l4_only_evaluation_fails_closed_for_l7_rules() -> None:
    """On a plain connection (no HTTP), a rule reading an L7 attribute cannot be proven:
    an ALLOW rule matches nothing, a DENY rule matches on its L4 parts (as ztunnel does)."""
    allow_get = policy("get", {"rules": [rule(source={"namespaces": ["front"]}, operation={"methods": ["GET"]})]})
    assert evaluate([allow_get], request(l7=True)).allowed
    assert not evaluate([allow_get], request(l7=False)).allowed
    deny_admin = policy("d", {"action": "DENY", "rules": [rule(source={"namespaces": ["front"]}, operation={"paths": ["/admin"]})]})
    assert evaluate([deny_admin], request(l7=True, path="/x")).allowed
    assert not evaluate([deny_admin], request(l7=False, path="/x")).allowed
    assert evaluate([deny_admin], request(l7=False, ns="other")).allowed  # its L4 part misses
    header = policy("h", {"action": "DENY", "rules": [rule(when=[{"key": "request.headers[x]", "values": ["1"]}])]})
    assert not evaluate([header], request(l7=False)).allowed


def test_classification() -> None:
    l4 = policy("l4", {"rules": [rule(source={"namespaces": ["a"], "ipBlocks": ["10.0.0.0/8"]}, operation={"ports": ["80"]}, when=[{"key": "source.ip", "values": ["10.0.0.1"]}])]})
    assert not needs_l7(l4)
    for r in (
        rule(operation={"paths": ["/"]}),
        rule(operation={"notMethods": ["GET"]}),
        rule(operation={"hosts": ["a"]}),
        rule(when=[{"key": "request.headers[a]", "values": ["b"]}]),
    ):
        assert needs_l7(policy("l7", {"rules": [r]})), r
