"""Policy set ids: the compiler stamps them, the registry names them back (policy_names)."""

from __future__ import annotations

from typing import Any

from agent.datapath.identity import WILDCARD
from agent.datapath.policy import compile_policy, decide
from agent.datapath.policy_names import PolicyNames, provenance_id
from agent.datapath.policy_plan import NOT_ENFORCED, Direction, PolicyPlan
from agent.datapath.policy_ports import PortRule
from tests.unit.datapath.policy_cluster import (
    DB,
    ID_CLIENT,
    ID_WEB,
    LOCAL,
    NAMESPACE_LABELS,
    PODS,
    WEB1,
    WEB2,
    netpol,
)

TCP = 6
IN, OUT = Direction.INGRESS, Direction.EGRESS
DBSEL = {"matchLabels": {"app": "db"}}
WEBSEL = {"matchLabels": {"app": "web"}}


def compile_named(names: PolicyNames, *policies: tuple[str, dict[str, Any]]) -> PolicyPlan:
    return compile_policy(
        [netpol(spec, name=name) for name, spec in policies], PODS, NAMESPACE_LABELS, LOCAL, names
    )


def test_each_value_names_the_policies_whose_rules_match_the_port() -> None:
    names = PolicyNames()
    plan = compile_named(
        names,
        ("web-in", {"podSelector": DBSEL, "ingress": [
            {"from": [{"podSelector": WEBSEL}], "ports": [{"port": 5432}]}]}),
        ("metrics", {"podSelector": DBSEL, "ingress": [
            {"from": [{"podSelector": WEBSEL}], "ports": [{"port": 9187}]}]}),
    )
    pid = decide(plan, DB, IN, WEB2, ID_WEB, TCP, 5432)
    assert pid is not None and pid > 0
    assert decide(plan, DB, IN, WEB2, ID_WEB, TCP, 9187) == pid  # one map value, one id
    assert names.allowed_by(pid, TCP, 5432) == ("prod/web-in",)
    assert names.allowed_by(pid, TCP, 9187) == ("prod/metrics",)
    assert decide(plan, DB, IN, WEB2, ID_WEB, TCP, 80) is None
    assert decide(plan, DB, OUT, WEB2, ID_WEB, TCP, 80) == NOT_ENFORCED


def test_overlapping_rules_name_every_policy_that_allows() -> None:
    names = PolicyNames()
    plan = compile_named(
        names,
        ("a", {"podSelector": DBSEL, "ingress": [{"from": [{"podSelector": WEBSEL}],
                                                   "ports": [{"port": 5432}]}]}),
        ("b", {"podSelector": DBSEL, "ingress": [{"from": [{"podSelector": WEBSEL}]}]}),
    )
    pid = decide(plan, DB, IN, WEB1, ID_WEB, TCP, 5432)
    assert pid is not None
    assert names.allowed_by(pid, TCP, 5432) == ("prod/a", "prod/b")
    assert names.allowed_by(pid, TCP, 22) == ("prod/b",)


def test_ip_block_values_are_named_per_prefix() -> None:
    names = PolicyNames()
    plan = compile_named(
        names,
        ("fabric", {"podSelector": WEBSEL, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "10.240.0.0/16", "except": ["10.240.9.0/24"]}}]}]}),
    )
    from ipaddress import IPv4Address

    pid = decide(plan, WEB1, OUT, IPv4Address("10.240.1.1"), 2, TCP, 443)
    assert pid is not None and names.allowed_by(pid, TCP, 443) == ("prod/fabric",)
    assert decide(plan, WEB1, OUT, IPv4Address("10.240.9.1"), 2, TCP, 443) is None


def test_ids_follow_the_policies_so_a_replaced_policy_is_rewritten() -> None:
    """Same rules from another policy: a different id, so the plan (and the map) changes."""
    spec = {"podSelector": DBSEL, "ingress": [{"from": [{"podSelector": WEBSEL}]}]}
    one = compile_named(PolicyNames(), ("old", spec))
    two = compile_named(PolicyNames(), ("new", spec))
    assert set(one.identity_rules) == set(two.identity_rules)
    assert one.identity_rules != two.identity_rules
    again = compile_named(PolicyNames(), ("old", spec))
    assert again.identity_rules == one.identity_rules  # stable across agents and restarts


def test_registry_is_bounded_keeps_collisions_and_ignores_unknown_ids() -> None:
    names = PolicyNames(capacity=2)
    first = names.learn([("ns/a", PortRule(TCP, 80, 80))])
    names.learn([("ns/b", PortRule(TCP, 80, 80))])
    names.learn([("ns/c", PortRule(TCP, 80, 80))])
    assert names.allowed_by(first, TCP, 80) == ()  # evicted, never a wrong name
    assert names.allowed_by(12345, TCP, 80) == ()
    assert names.learn([]) == 0
    rule = PortRule(TCP, 80, 80, policy=77)  # a stamped rule learns as the plain rule
    assert names.learn([("ns/c", rule)]) == provenance_id(frozenset({("ns/c", PortRule(TCP, 80, 80))}))


def test_colliding_ids_name_both_provenances_by_port() -> None:
    names = PolicyNames()
    a = frozenset({("ns/a", PortRule(TCP, 80, 80))})
    pid = names.learn(a)
    # Force a second provenance into the same slot, as a hash collision would.
    names._by_id[pid] = (*names._by_id[pid], frozenset({("ns/z", PortRule(TCP, 81, 81))}))
    assert names.allowed_by(pid, TCP, 80) == ("ns/a",)
    assert names.allowed_by(pid, TCP, 81) == ("ns/z",)


def test_wildcard_value_id_is_reported_for_any_peer() -> None:
    names = PolicyNames()
    plan = compile_named(names, ("open", {"podSelector": DBSEL, "ingress": [{}]}))
    pid = decide(plan, DB, IN, WEB1, ID_CLIENT, TCP, 1)
    assert pid == plan.identity_rules[(DB, WILDCARD, IN)][0].policy
    assert names.allowed_by(pid, TCP, 1) == ("prod/open",)
