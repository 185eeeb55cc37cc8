"""NetworkPolicy compiler: the issue's policy cases as exact plan entries, plus verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from agent.datapath.identity import WILDCARD, WORLD
from agent.datapath.policy import (
    MAX_PORT_RULES,
    CidrRule,
    Direction,
    EndpointPolicy,
    PortRule,
    compile_policy,
    evaluate,
    lookup_cidr,
)
from agent.datapath.policy_cidr import DENY
from agent.datapath.policy_ports import ANY_PORT
from tests.unit.datapath.policy_cluster import (
    CLIENT,
    DB,
    ID_CLIENT,
    ID_DB,
    ID_PROM,
    ID_WEB,
    LOCAL,
    NAMESPACE_LABELS,
    PODS,
    PROM,
    WEB1,
    WEB2,
    compile_specs,
    endpoints,
    ip,
    netpol,
    pod_doc,
    unnamed,
)

IN, OUT = Direction.INGRESS, Direction.EGRESS
TCP, UDP = 6, 17
WEB = {"matchLabels": {"app": "web"}}
DBSEL = {"matchLabels": {"app": "db"}}
OUTSIDE = ip("203.0.113.9")


def tcp(first: int, last: int | None = None) -> PortRule:
    return PortRule(TCP, first, first if last is None else last)


def allow(*ports: PortRule) -> CidrRule:
    return CidrRule(deny=False, ports=ports)


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


Verdict = tuple[IPv4Address, Direction, IPv4Address, int, int, int, bool]


@dataclass
class Case:
    name: str
    specs: list[dict[str, Any]]
    enforced: dict[IPv4Address, tuple[bool, bool]]
    identity_rules: dict[tuple[IPv4Address, int, Direction], tuple[PortRule, ...]]
    cidr_rules: dict[tuple[IPv4Address, Direction, IPv4Network], CidrRule] = field(
        default_factory=dict
    )
    verdicts: list[Verdict] = field(default_factory=list)


CASES = [
    Case(
        "deny-all ingress",
        [{"podSelector": {}, "policyTypes": ["Ingress"]}],
        {WEB1: (True, False), DB: (True, False)},
        {},
        verdicts=[
            (WEB1, IN, WEB2, ID_WEB, TCP, 8080, False),
            (WEB1, OUT, CLIENT, ID_CLIENT, TCP, 9090, True),
            (PROM, IN, CLIENT, ID_CLIENT, TCP, 9100, True),  # other namespace: not selected
        ],
    ),
    Case(
        "allow from a namespace by selector",
        [
            {
                "podSelector": DBSEL,
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}],
            }
        ],
        {DB: (True, False)},
        {(DB, ID_CLIENT, IN): (ANY_PORT,)},
        verdicts=[
            (DB, IN, CLIENT, ID_CLIENT, UDP, 5, True),
            (DB, IN, WEB2, ID_WEB, TCP, 5432, False),
        ],
    ),
    Case(
        "allow one port only",
        [
            {
                "podSelector": WEB,
                "ingress": [{"from": [{"podSelector": DBSEL}], "ports": [{"port": 8080}]}],
            }
        ],
        {WEB1: (True, False)},
        {(WEB1, ID_DB, IN): (tcp(8080),)},
        verdicts=[
            (WEB1, IN, DB, ID_DB, TCP, 8080, True),
            (WEB1, IN, DB, ID_DB, TCP, 8081, False),
            (WEB1, IN, DB, ID_DB, UDP, 8080, False),
            (WEB1, IN, CLIENT, ID_CLIENT, TCP, 8080, False),
        ],
    ),
    Case(
        "egress deny",
        [{"podSelector": WEB, "policyTypes": ["Egress"]}],
        {WEB1: (False, True)},
        {},
        verdicts=[
            (WEB1, OUT, DB, ID_DB, TCP, 5432, False),
            (WEB1, IN, DB, ID_DB, TCP, 8080, True),
        ],
    ),
    Case(
        "ipBlock with except",
        [
            {
                "podSelector": DBSEL,
                "ingress": [
                    {
                        "from": [
                            {"ipBlock": {"cidr": "172.16.0.0/16", "except": ["172.16.1.0/24"]}}
                        ],
                        "ports": [{"port": 5432}],
                    }
                ],
            }
        ],
        {DB: (True, False)},
        {},
        {
            (DB, IN, net("172.16.0.0/16")): allow(tcp(5432)),
            (DB, IN, net("172.16.1.0/24")): DENY,
        },
        verdicts=[
            (DB, IN, ip("172.16.7.1"), WORLD, TCP, 5432, True),
            (DB, IN, ip("172.16.1.1"), WORLD, TCP, 5432, False),
            (DB, IN, ip("172.17.0.1"), WORLD, TCP, 5432, False),
            (DB, IN, ip("172.16.7.1"), WORLD, TCP, 22, False),
        ],
    ),
    Case(
        "named port, ingress: the endpoint's own",
        [{"podSelector": WEB, "ingress": [{"ports": [{"port": "http"}, {"port": "pg"}]}]}],
        {WEB1: (True, False)},
        {(WEB1, WILDCARD, IN): (tcp(8080),)},  # web declares no "pg": nothing for it
        verdicts=[
            (WEB1, IN, OUTSIDE, WORLD, TCP, 8080, True),
            (WEB1, IN, OUTSIDE, WORLD, TCP, 5432, False),
        ],
    ),
    Case(
        "named port, egress: each peer's own",
        [
            {
                "podSelector": DBSEL,
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"namespaceSelector": {}, "podSelector": {}}],
                        "ports": [{"port": "http"}, {"protocol": "UDP", "port": "http"}],
                    }
                ],
            }
        ],
        {DB: (False, True)},
        {(DB, ID_WEB, OUT): (tcp(8080),), (DB, ID_CLIENT, OUT): (tcp(9090),)},
        verdicts=[
            (DB, OUT, WEB2, ID_WEB, TCP, 8080, True),
            (DB, OUT, WEB2, ID_WEB, TCP, 9090, False),
            (DB, OUT, CLIENT, ID_CLIENT, TCP, 9090, True),
            (DB, OUT, PROM, ID_PROM, TCP, 9100, False),
        ],
    ),
    Case(
        "endPort range",
        [
            {
                "podSelector": WEB,
                "ingress": [
                    {"ports": [{"protocol": "UDP", "port": 53}, {"port": 30000, "endPort": 32767}]}
                ],
            }
        ],
        {WEB1: (True, False)},
        {(WEB1, WILDCARD, IN): (tcp(30000, 32767), PortRule(UDP, 53, 53))},
        verdicts=[
            (WEB1, IN, OUTSIDE, WORLD, TCP, 30000, True),
            (WEB1, IN, OUTSIDE, WORLD, TCP, 32767, True),
            (WEB1, IN, OUTSIDE, WORLD, TCP, 32768, False),
            (WEB1, IN, OUTSIDE, WORLD, TCP, 53, False),
        ],
    ),
    Case(
        "multiple policies union",
        [
            {
                "podSelector": WEB,
                "ingress": [{"from": [{"podSelector": DBSEL}], "ports": [{"port": 8080}]}],
            },
            {
                "podSelector": {},
                "ingress": [
                    {"from": [{"podSelector": DBSEL}], "ports": [{"port": 8081}]},
                    {
                        "from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}],
                        "ports": [{"port": 9000}],
                    },
                ],
            },
        ],
        {WEB1: (True, False), DB: (True, False)},
        {
            (WEB1, ID_DB, IN): (tcp(8080, 8081),),  # adjacent ports of two policies merge
            (WEB1, ID_CLIENT, IN): (tcp(9000),),
            (DB, ID_DB, IN): (tcp(8081),),
            (DB, ID_CLIENT, IN): (tcp(9000),),
        },
    ),
    Case(
        "policyTypes [Egress] only",
        [
            {
                "podSelector": WEB,
                "policyTypes": ["Egress"],
                "ingress": [{"ports": [{"port": 1}]}],  # ignored: Ingress is not a listed type
                "egress": [
                    {
                        "to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"port": 53}],
                    },
                    {"to": [{"namespaceSelector": {"matchLabels": {"purpose": "monitoring"}}}]},
                ],
            }
        ],
        {WEB1: (False, True)},
        {(WEB1, ID_PROM, OUT): (ANY_PORT,)},
        {(WEB1, OUT, net("0.0.0.0/0")): allow(tcp(53), PortRule(UDP, 53, 53))},
        verdicts=[
            (WEB1, OUT, OUTSIDE, WORLD, UDP, 53, True),
            (WEB1, OUT, OUTSIDE, WORLD, UDP, 54, False),
            (WEB1, OUT, PROM, ID_PROM, TCP, 9100, True),
            (WEB1, IN, OUTSIDE, WORLD, TCP, 1234, True),
        ],
    ),
    Case(
        "empty podSelector selects the namespace",
        [{"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}],
        {WEB1: (True, False), DB: (True, False)},
        {
            (WEB1, ID_WEB, IN): (ANY_PORT,),
            (WEB1, ID_DB, IN): (ANY_PORT,),
            (DB, ID_WEB, IN): (ANY_PORT,),
            (DB, ID_DB, IN): (ANY_PORT,),
        },
        verdicts=[(DB, IN, CLIENT, ID_CLIENT, TCP, 5432, False)],
    ),
    Case(
        "namespaceSelector and podSelector together, and the namespace name label",
        [
            {
                "podSelector": DBSEL,
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {"matchLabels": {"env": "dev"}},
                                "podSelector": WEB,
                            },
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": "mon"}
                                }
                            },
                        ]
                    }
                ],
            }
        ],
        {DB: (True, False)},
        {(DB, ID_PROM, IN): (ANY_PORT,)},  # no web pod lives in dev
    ),
    Case(
        "an empty rule allows everything",
        [
            {
                "podSelector": WEB,
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{}],
                "egress": [{}],
            }
        ],
        {WEB1: (True, True)},
        {(WEB1, WILDCARD, IN): (ANY_PORT,), (WEB1, WILDCARD, OUT): (ANY_PORT,)},
        verdicts=[(WEB1, OUT, OUTSIDE, WORLD, 1, 0, True)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_policy_case(case: Case) -> None:
    plan = compile_specs(*case.specs)
    assert plan.errors == ()
    assert plan.endpoints == {
        e: EndpointPolicy(
            e, next(p.identity for p in PODS if p.ip == e), *case.enforced.get(e, (False, False))
        )
        for e in LOCAL
    }
    assert unnamed(plan.identity_rules) == case.identity_rules
    assert unnamed(plan.cidr_rules) == case.cidr_rules
    for endpoint, direction, peer, identity, proto, port, expected in case.verdicts:
        verdict = evaluate(plan, endpoint, direction, peer, identity, proto, port)
        assert verdict is expected, (endpoint, direction.name, peer, proto, port)


def test_overlapping_ip_blocks_merge_per_prefix() -> None:
    plan = compile_specs(
        {
            "podSelector": DBSEL,
            "ingress": [
                {
                    "from": [{"ipBlock": {"cidr": "10.8.0.0/16", "except": ["10.8.1.0/24"]}}],
                    "ports": [{"port": 1}],
                },
                {"from": [{"ipBlock": {"cidr": "10.8.0.0/20"}}], "ports": [{"port": 2}]},
                {"from": [{"ipBlock": {"cidr": "10.8.1.128/25"}}], "ports": [{"port": 3}]},
            ],
        }
    )
    assert unnamed(plan.cidr_rules) == {
        (DB, IN, net("10.8.0.0/16")): allow(tcp(1)),
        (DB, IN, net("10.8.0.0/20")): allow(tcp(1, 2)),
        (DB, IN, net("10.8.1.0/24")): allow(tcp(2)),
        (DB, IN, net("10.8.1.128/25")): allow(tcp(2, 3)),
    }
    found = lookup_cidr(plan, DB, IN, ip("10.8.1.200"))
    assert found is not None and found[0] == net("10.8.1.128/25")
    assert unnamed({0: found[1]}) == {0: allow(tcp(2, 3))}
    assert lookup_cidr(plan, DB, IN, ip("10.9.0.0")) is None


def test_egress_named_port_to_an_ip_block_is_per_pod_address() -> None:
    plan = compile_specs(
        {
            "podSelector": DBSEL,
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}}],
                    "ports": [{"port": "http"}, {"port": 443}],
                }
            ],
        }
    )
    # web-1 (10.0.1.10) is inside the except; web-2 and client are in the block.
    assert unnamed(plan.cidr_rules) == {
        (DB, OUT, net("10.0.0.0/16")): allow(tcp(443)),
        (DB, OUT, net("10.0.1.0/24")): DENY,
        (DB, OUT, net(f"{WEB2}/32")): allow(tcp(443), tcp(8080)),
        (DB, OUT, net(f"{CLIENT}/32")): allow(tcp(443), tcp(9090)),
    }
    assert plan.identity_rules == {}


def test_egress_named_port_to_every_peer_keys_by_identity() -> None:
    plan = compile_specs(
        {
            "podSelector": DBSEL,
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "http"}, {"port": 443}]}],
        }
    )
    assert unnamed(plan.identity_rules) == {
        (DB, WILDCARD, OUT): (tcp(443),),
        (DB, ID_WEB, OUT): (tcp(8080),),
        (DB, ID_CLIENT, OUT): (tcp(9090),),
    }
    assert evaluate(plan, DB, OUT, OUTSIDE, WORLD, TCP, 8080) is False
    assert evaluate(plan, DB, OUT, WEB2, ID_WEB, TCP, 8080) is True


def test_too_many_port_rules_fail_closed_and_say_so() -> None:
    ports = [{"port": 1000 + 2 * i} for i in range(MAX_PORT_RULES + 2)]
    plan = compile_specs(
        {"podSelector": WEB, "ingress": [{"from": [{"podSelector": DBSEL}], "ports": ports}]}
    )
    kept = unnamed(plan.identity_rules)[(WEB1, ID_DB, IN)]
    assert kept == tuple(tcp(1000 + 2 * i) for i in range(MAX_PORT_RULES))
    assert plan.errors == (
        f"Pod prod/web-1 ({WEB1}): ingress rules for peer identity {ID_DB} need 18 port rules, "
        "more than the limit of 16; denied TCP/1032, TCP/1034 (from NetworkPolicy prod/np0)",
    )
    assert evaluate(plan, WEB1, IN, DB, ID_DB, TCP, 1034) is False


def test_ipv6_blocks_are_reported_and_never_widen_a_rule() -> None:
    plan = compile_specs(
        {"podSelector": WEB, "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/64"}}]}]}
    )
    assert plan.errors == (
        "NetworkPolicy prod/np0: spec.ingress[0].from[0].ipBlock.cidr: IPv6 is not supported "
        "by the IPv4 datapath; this peer allows nothing",
    )
    assert plan.endpoints[WEB1].ingress_enforced
    assert plan.identity_rules == {} and plan.cidr_rules == {}


def test_selectors_on_non_identity_labels_are_flagged() -> None:
    plan = compile_specs(
        {
            "podSelector": DBSEL,
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod-template-hash": "a"}}}]}],
        }
    )
    assert unnamed(plan.identity_rules) == {(DB, ID_WEB, IN): (ANY_PORT,)}
    assert len(plan.errors) == 1
    assert plan.errors[0].startswith(
        "NetworkPolicy prod/np0: spec.ingress[0].from[0].podSelector: label 'pod-template-hash'"
    )


def test_pods_with_reserved_identities_are_left_out() -> None:
    bad = endpoints([pod_doc("prod", "odd", "10.0.1.99", {"app": "db"}, [])])[0]
    bad = type(bad)(bad.namespace, bad.name, bad.ip, WILDCARD, bad.labels, bad.named_ports)
    plan = compile_policy(
        [netpol({"podSelector": WEB, "ingress": [{"from": [{"podSelector": DBSEL}]}]})],
        [*PODS, bad],
        NAMESPACE_LABELS,
        LOCAL | {bad.ip},
    )
    assert plan.errors == (
        "Pod prod/odd: identity 0 is outside the pod range [256, 16777216); "
        "the pod is left out of policy",
    )
    assert bad.ip not in plan.endpoints
    assert set(plan.identity_rules) == {(WEB1, ID_DB, IN)}


def test_policies_in_other_namespaces_and_remote_pods_compile_nothing() -> None:
    policy = netpol({"podSelector": {}, "policyTypes": ["Ingress"]}, namespace="dev")
    plan = compile_policy([policy], PODS, NAMESPACE_LABELS, LOCAL)
    assert not any(e.ingress_enforced or e.egress_enforced for e in plan.endpoints.values())
    assert evaluate(plan, CLIENT, IN, WEB1, ID_WEB, TCP, 1) is True  # not local: no policy


def test_compilation_is_order_independent() -> None:
    specs = [case.specs for case in CASES]
    flat = [spec for group in specs for spec in group]
    policies = [netpol(spec, name=f"np{i}") for i, spec in enumerate(flat)]
    forward = compile_policy(policies, PODS, NAMESPACE_LABELS, LOCAL)
    backward = compile_policy(policies[::-1], PODS[::-1], NAMESPACE_LABELS, LOCAL)
    assert forward == backward
