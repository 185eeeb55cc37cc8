"""AuthorizationPolicy's L4-only policies compiled to per-client kernel verdicts: every L4
field and its not-form, DENY over ALLOW, AUDIT ignored, what stays with the waypoint, and the
compiled partition agreeing with the evaluator the waypoint runs on every port."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath.authz_l4 import (
    AUTHZ_F_ALLOW,
    AUTHZ_F_BY_ALLOW,
    UNKNOWN_CLIENT,
    PortVerdict,
    compile_authz,
    decide,
    kernel_entries,
    port_classes,
)
from agent.datapath.drop_reasons import code
from agent.datapath.flowevents import POLICY_MATCHED, EventDecoder, FlowEventLayout
from agent.datapath.identity import allocate_identities, identity_labels
from agent.datapath.policy_names import PolicyNames
from agent.datapath.policy_plan import MAX_PORT_RULES, PodEndpoint
from agent.model.authz import AuthorizationPolicy
from authz import Peer, Request, evaluate, kernel_refusal
from tests.unit.authz.helpers import TD, policy, rule

ADDRESSES = {
    "front/web": "10.1.0.5",
    "front/admin": "10.1.0.6",
    "evil/web": "10.1.0.7",
    "shop/api": "10.2.0.9",
    "shop/api-2": "10.2.0.10",
}


def pod(key: str, labels: dict[str, str], sa: str = "default") -> PodEndpoint:
    namespace, name = key.split("/")
    label_set = identity_labels(namespace, labels, sa)
    number = allocate_identities([label_set]).by_labels[label_set]
    return PodEndpoint(namespace, name, IPv4Address(ADDRESSES[key]), number, labels, {}, sa)


WEB = pod("front/web", {"app": "web"}, "web")
ADMIN = pod("front/admin", {"app": "web"}, "admin")  # same labels, another ServiceAccount
EVIL = pod("evil/web", {"app": "web"}, "web")  # same labels and name, another namespace
API = pod("shop/api", {"app": "api"}, "api")
CLIENTS = (WEB, ADMIN, EVIL)
PODS = (*CLIENTS, API)
LOCAL = [p.ip for p in CLIENTS]


def api_policy(name: str, action: str, *rules: dict[str, Any]) -> AuthorizationPolicy:
    return policy(name, {"selector": {"matchLabels": {"app": "api"}}, "action": action,
                         "rules": list(rules)})


def verdict(policies: list[AuthorizationPolicy], client: PodEndpoint, port: int = 8080
            ) -> PortVerdict | None:
    plan = compile_authz(policies, PODS, LOCAL, TD)
    return decide(plan, client.ip, API.identity, port)


def test_identities_tell_service_accounts_apart() -> None:
    assert WEB.identity != ADMIN.identity != EVIL.identity != WEB.identity


# (name, rule, which clients are matched by the rule on port 8080)
L4_FIELDS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("namespaces", rule(source={"namespaces": ["front"]}), {"web", "admin"}),
    ("notNamespaces", rule(source={"notNamespaces": ["front"]}), {"evil"}),
    ("serviceAccounts", rule(source={"serviceAccounts": ["front/web"]}), {"web"}),
    ("notServiceAccounts", rule(source={"notServiceAccounts": ["front/web"]}), {"admin", "evil"}),
    ("principals", rule(source={"principals": ["cluster.local/ns/front/sa/admin"]}), {"admin"}),
    ("principal suffix", rule(source={"principals": ["*/sa/web"]}), {"web", "evil"}),
    ("notPrincipals", rule(source={"notPrincipals": ["*/sa/web"]}), {"admin"}),
    ("ipBlocks", rule(source={"ipBlocks": ["10.1.0.4/31"]}), {"web"}),
    ("notIpBlocks", rule(source={"notIpBlocks": ["10.1.0.5"]}), {"admin", "evil"}),
    ("remoteIpBlocks", rule(source={"remoteIpBlocks": ["10.1.0.7/32"]}), {"evil"}),
    ("ports", rule(operation={"ports": ["8080"]}), {"web", "admin", "evil"}),
    ("ports other", rule(operation={"ports": ["9090"]}), set()),
    ("notPorts", rule(operation={"notPorts": ["8080"]}), set()),
    ("when source.namespace", rule(when=[{"key": "source.namespace", "values": ["evil"]}]), {"evil"}),
    ("when source.principal", rule(when=[{"key": "source.principal", "notValues": ["*/sa/web"]}]), {"admin"}),
    ("when source.ip", rule(when=[{"key": "source.ip", "values": ["10.1.0.6"]}]), {"admin"}),
    ("when destination.port", rule(when=[{"key": "destination.port", "values": ["8080"]}]), {"web", "admin", "evil"}),
    ("source AND port", rule(source={"namespaces": ["front"]}, operation={"ports": ["9090"]}), set()),
]
NAMES = {"web": WEB, "admin": ADMIN, "evil": EVIL}


@pytest.mark.parametrize(("name", "r", "matched"), L4_FIELDS, ids=[c[0] for c in L4_FIELDS])
def test_every_l4_field_in_allow_and_deny(name: str, r: dict[str, Any], matched: set[str]) -> None:
    for who, client in NAMES.items():
        allow = verdict([api_policy("allow", "ALLOW", r)], client)
        deny = verdict([api_policy("deny", "DENY", r)], client)
        assert allow is not None and deny is not None
        assert allow.allowed == (who in matched), (name, who)
        assert deny.allowed == (who not in matched), (name, who)
        assert (allow.policies if who in matched else deny.policies) in (("shop/allow",), ())
        if who in matched:
            assert deny.policies == ("shop/deny",)  # a denial names the DENY policy


def test_deny_wins_over_allow_and_names_the_deny() -> None:
    allow = api_policy("allow", "ALLOW", rule(source={"namespaces": ["front"]}))
    deny = api_policy("deny", "DENY", rule(source={"serviceAccounts": ["front/admin"]}))
    assert verdict([allow, deny], WEB) == PortVerdict(0, 65535, True, ("shop/allow",))
    assert verdict([allow, deny], ADMIN) == PortVerdict(0, 65535, False, ("shop/deny",))
    # No ALLOW matched: every ALLOW in force is named.
    assert verdict([allow, deny], EVIL) == PortVerdict(0, 65535, False, ("shop/allow",), True)


def test_an_audit_policy_keeps_its_destination_with_the_waypoint() -> None:
    """AUDIT records each matching request as a flow, which only the waypoint writes: a
    destination an AUDIT policy applies to is not judged in the kernel, even beside a DENY
    the kernel could judge alone (the waypoint judges both)."""
    audit = api_policy("audit", "AUDIT", rule())
    plan = compile_authz([audit], PODS, LOCAL, TD)
    assert plan.enforced == {} and plan.verdicts == {}
    deny = api_policy("deny", "DENY", rule(source={"namespaces": ["evil"]}))
    assert verdict([deny], WEB) == PortVerdict(0, 65535, True, ())  # the kernel's alone
    both = compile_authz([audit, deny], PODS, LOCAL, TD)
    assert both.enforced == {} and both.verdicts == {} and API.identity in both.waypoint


def test_empty_allow_denies_everything_and_empty_rule_allows_everything() -> None:
    assert not verdict([policy("all", {"selector": {"matchLabels": {"app": "api"}}})], WEB).allowed  # type: ignore[union-attr]
    assert verdict([api_policy("any", "ALLOW", {})], EVIL).allowed  # type: ignore[union-attr]


def test_ports_split_the_port_space_into_ranges() -> None:
    p = api_policy("p", "DENY", rule(operation={"ports": ["22", "8080"]}))
    plan = compile_authz([p], PODS, LOCAL, TD)
    assert plan.verdicts[(WEB.ip, API.identity)] == (
        PortVerdict(0, 21, True),
        PortVerdict(22, 22, False, ("shop/p",)),
        PortVerdict(23, 8079, True),
        PortVerdict(8080, 8080, False, ("shop/p",)),
        PortVerdict(8081, 65535, True),
    )


def test_an_unknown_client_is_denied_naming_the_policies() -> None:
    plan = compile_authz([api_policy("any", "ALLOW", {})], PODS, LOCAL, TD)
    assert plan.verdicts[(UNKNOWN_CLIENT, API.identity)] == (
        PortVerdict(0, 65535, False, ("shop/any",), True),
    )
    assert decide(plan, IPv4Address("10.1.0.99"), API.identity, 80) == PortVerdict(
        0, 65535, False, ("shop/any",), True
    )


def test_only_destinations_under_policy_are_judged() -> None:
    plan = compile_authz([api_policy("any", "ALLOW", {})], PODS, LOCAL, TD)
    assert set(plan.enforced) == {API.identity}
    assert decide(plan, API.ip, WEB.identity, 80) is None
    assert {key[0] for key in plan.verdicts} == {UNKNOWN_CLIENT, *LOCAL}


def test_mesh_wide_and_namespace_wide_policies_apply() -> None:
    mesh = policy("mesh", {"action": "DENY", "rules": [rule(source={"namespaces": ["evil"]})]},
                  namespace="tulle-system")
    plan = compile_authz([mesh], PODS, LOCAL, TD)
    assert set(plan.enforced) == {p.identity for p in PODS}
    assert not decide(plan, EVIL.ip, API.identity, 80).allowed  # type: ignore[union-attr]
    assert decide(plan, WEB.ip, ADMIN.identity, 80).allowed  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"rules": [rule(operation={"paths": ["/admin"]})]}, "L7"),
        ({"rules": [rule(when=[{"key": "request.headers[x-a]", "values": ["1"]}])]}, "L7"),
        ({"rules": [rule(when=[{"key": "destination.ip", "values": ["10.2.0.9"]}])]},
         "destination.ip"),
    ],
)
def test_what_the_kernel_cannot_judge_stays_with_the_waypoint(spec: dict[str, Any], why: str
                                                               ) -> None:
    l7 = api_policy("l7", spec.get("action", "ALLOW"), *spec["rules"])
    l4 = api_policy("l4", "DENY", rule(source={"namespaces": ["evil"]}))
    assert why in (kernel_refusal(l7) or "")
    plan = compile_authz([l4, l7], PODS, LOCAL, TD)
    assert plan.waypoint == {API.identity}
    assert API.identity not in plan.enforced and plan.errors == ()
    assert decide(plan, EVIL.ip, API.identity, 80) is None


def test_target_refs_are_the_waypoints() -> None:
    svc = policy("svc", {"targetRefs": [{"kind": "Service", "group": "", "name": "api"}],
                         "action": "DENY", "rules": [{}]})
    assert "targets" in (kernel_refusal(svc) or "")
    assert compile_authz([svc], PODS, LOCAL, TD).enforced == {}


def test_an_identity_whose_pods_differ_in_policy_stays_with_the_waypoint() -> None:
    # pod-template-hash is not part of identities: two pods, one identity, one selected.
    a = pod("shop/api", {"app": "api", "pod-template-hash": "a"}, "api")
    b = pod("shop/api-2", {"app": "api", "pod-template-hash": "b"}, "api")
    assert a.identity == b.identity
    p = policy("one", {"selector": {"matchLabels": {"pod-template-hash": "a"}}, "rules": [{}]})
    plan = compile_authz([p], (*CLIENTS, a, b), LOCAL, TD)
    assert plan.waypoint == {a.identity} and plan.enforced == {}
    assert "shop/api" in plan.errors[0] and "shop/api-2" in plan.errors[0]


def test_too_many_ranges_fail_over_to_the_waypoint() -> None:
    ports = [str(1000 + 2 * i) for i in range(MAX_PORT_RULES)]
    p = api_policy("many", "ALLOW", rule(operation={"ports": ports}))
    plan = compile_authz([p], PODS, LOCAL, TD)
    assert plan.waypoint == {API.identity} and API.identity not in plan.enforced
    assert f"more than {MAX_PORT_RULES}" in plan.errors[0]


def test_kernel_entries_carry_flags_and_name_ids() -> None:
    allow = api_policy("allow", "ALLOW", rule(source={"namespaces": ["front"]}))
    deny = api_policy("deny", "DENY", rule(operation={"ports": ["22"]}))
    names = PolicyNames()
    entries = kernel_entries(compile_authz([allow, deny], PODS, LOCAL, TD), names)
    web = entries[(WEB.ip, API.identity)]
    assert [(first, last, flags) for first, last, flags, _ in web] == [
        (0, 21, AUTHZ_F_ALLOW), (22, 22, 0), (23, 65535, AUTHZ_F_ALLOW)]
    assert names.allowed_by(web[1][3], 6, 22) == ("shop/deny",)
    assert names.allowed_by(web[0][3], 6, 10) == ("shop/allow",)
    [(_, _, flags, pid)] = [e for e in entries[(EVIL.ip, API.identity)] if e[0] == 0]
    assert flags == AUTHZ_F_BY_ALLOW and names.allowed_by(pid, 17, 5) == ("shop/allow",)
    [fallback] = entries[(UNKNOWN_CLIENT, API.identity)]
    assert fallback[:3] == (0, 65535, AUTHZ_F_BY_ALLOW)
    assert names.allowed_by(fallback[3], 6, 1) == ("shop/allow", "shop/deny")


def test_port_classes_cover_the_port_space_once() -> None:
    assert port_classes(()) == ((0, 65535),)
    assert port_classes({0, 65535, 5}) == ((0, 0), (1, 4), (5, 5), (6, 65534), (65535, 65535))


# The compiled partition is the evaluator's answer on every port (no second implementation).
PORTS = st.sampled_from(["22", "80", "443", "8080"])
SOURCES = st.sampled_from([
    {}, {"namespaces": ["front"]}, {"notNamespaces": ["front"]},
    {"serviceAccounts": ["front/admin"]}, {"principals": ["*/sa/web"]},
    {"ipBlocks": ["10.1.0.6/32"]}, {"notIpBlocks": ["10.1.0.0/24"]},
])


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    source = draw(SOURCES)
    if source:
        out["from"] = [{"source": source}]
    operation = {}
    if draw(st.booleans()):
        operation["ports"] = draw(st.lists(PORTS, min_size=1, max_size=2))
    if draw(st.booleans()):
        operation["notPorts"] = draw(st.lists(PORTS, min_size=1, max_size=2))
    if operation:
        out["to"] = [{"operation": operation}]
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ALLOW", "DENY", "AUDIT"]),
                          st.lists(rules(), max_size=2)), min_size=1, max_size=3))
def test_compiled_verdicts_agree_with_the_evaluator(specs: list[tuple[str, list[Any]]]) -> None:
    policies = [api_policy(f"p{i}", action, *rs) for i, (action, rs) in enumerate(specs)]
    plan = compile_authz(policies, PODS, LOCAL, TD)
    for client in CLIENTS:
        peer = Peer.of_pod(str(client.ip), TD, client.namespace, client.service_account)
        for port in (0, 21, 22, 23, 80, 443, 444, 8080, 65535):
            expected = evaluate(sorted(policies, key=lambda p: p.metadata.name),
                                Request(peer, port=port, l7=False))
            got = decide(plan, client.ip, API.identity, port)
            if got is None:  # not enforced: an AUDIT policy applies (the waypoint judges)
                assert any(a == "AUDIT" for a, _ in specs)
                assert API.identity in plan.waypoint or all(a == "AUDIT" for a, _ in specs)
                continue
            assert (got.allowed, got.policies, got.by_allow) == (
                expected.allowed, expected.policies, expected.by_allow)


def test_a_kernel_denial_record_names_the_authorization_policy() -> None:
    """The DROP record's ``policy`` (authz.h) becomes ``egress_denied_by``; a NetworkPolicy
    drop (``policy`` 0) names nothing."""
    names = PolicyNames()
    deny = api_policy("deny", "DENY", rule(source={"namespaces": ["front"]}))
    entries = kernel_entries(compile_authz([deny], PODS, LOCAL, TD), names)
    [(_, _, _, pid)] = entries[(WEB.ip, API.identity)]

    def record(policy: int) -> bytes:
        ev = FlowEventLayout()
        ev.type, ev.verdict, ev.proto, ev.dir, ev.obs_point = 2, 2, 6, 2, 3  # DROP, egress
        ev.drop_reason = code("POLICY_DENY")
        ev.dport = socket.htons(8080)
        ev.policy = policy
        return bytes(ev)

    decoder = EventDecoder("n1", authz_names=names)
    flow = decoder.decode(record(POLICY_MATCHED | pid))
    assert flow.drop_reason_desc == "POLICY_DENY"
    assert [(p.namespace, p.name, p.kind) for p in flow.egress_denied_by] == [
        ("shop", "deny", "AuthorizationPolicy")]
    assert flow.ingress_denied_by == () and flow.egress_allowed_by == ()
    assert decoder.decode(record(0)).egress_denied_by == ()
