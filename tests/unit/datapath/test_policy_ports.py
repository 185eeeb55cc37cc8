"""Port rules: what NetworkPolicyPorts become, and the normal form the maps hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath.policy_ports import (
    ANY_PORT,
    PortRule,
    fixed_port_rules,
    format_rules,
    named_port_rules,
    normalise,
    ports_match,
)
from agent.model.meta import Protocol
from agent.model.networking import NetworkPolicyPort

TCP, UDP, SCTP = 6, 17, 132


def test_numeric_ranges_and_portless_entries() -> None:
    ports = [
        NetworkPolicyPort(Protocol.TCP, 80),
        NetworkPolicyPort(Protocol.UDP, 30000, 30010),
        NetworkPolicyPort(Protocol.SCTP),
        NetworkPolicyPort(Protocol.TCP, "http"),
    ]
    assert fixed_port_rules(ports) == (
        PortRule(TCP, 80, 80),
        PortRule(UDP, 30000, 30010),
        PortRule(SCTP, 0, 65535),
    )


def test_named_ports_resolve_by_name_and_protocol() -> None:
    ports = [NetworkPolicyPort(Protocol.TCP, "http"), NetworkPolicyPort(Protocol.UDP, "http")]
    assert named_port_rules(ports, {("http", TCP): 8080}) == (PortRule(TCP, 8080, 8080),)
    assert named_port_rules(ports, {("dns", UDP): 53}) == ()


def test_normalise_merges_sorts_and_subsumes() -> None:
    assert normalise([PortRule(TCP, 90, 95), PortRule(UDP, 1, 1), PortRule(TCP, 80, 89)]) == (
        PortRule(TCP, 80, 95),  # adjacent
        PortRule(UDP, 1, 1),
    )
    assert normalise([PortRule(TCP, 80, 100), PortRule(TCP, 90, 95), PortRule(TCP, 102, 102)]) == (
        PortRule(TCP, 80, 100),  # overlapping; 102 is not adjacent to 100
        PortRule(TCP, 102, 102),
    )
    assert normalise([PortRule(UDP, 53, 53), ANY_PORT, PortRule(TCP, 0, 65535)]) == (ANY_PORT,)
    assert normalise([]) == ()


def test_rules_print_like_hubble_ports() -> None:
    rules = (ANY_PORT, PortRule(TCP, 80, 80), PortRule(UDP, 30000, 30010), PortRule(SCTP, 0, 65535))
    assert format_rules(rules) == "ANY/any, TCP/80, UDP/30000-30010, SCTP/any"
    assert format_rules(()) == "nothing"


port_rules = st.lists(
    st.one_of(
        st.builds(
            lambda proto, first, width: PortRule(proto, first, first + width),
            st.sampled_from([TCP, UDP]),
            st.integers(0, 20),
            st.integers(0, 4),
        ),
        st.builds(
            lambda first, width: PortRule(0, first, first + width),
            st.integers(0, 20),
            st.integers(0, 4),
        ),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(port_rules)
def test_normalise_keeps_meaning_and_is_canonical(rules: list[PortRule]) -> None:
    result = normalise(rules)
    for proto in (TCP, UDP, SCTP):
        for port in range(0, 27):
            assert ports_match(result, proto, port) == ports_match(rules, proto, port)
    assert list(result) == sorted(result)
    for before, after in zip(result, result[1:], strict=False):
        if before.protocol == after.protocol:
            assert after.first > before.last + 1  # neither overlapping nor adjacent
    assert normalise(result) == result
    assert normalise(reversed(rules)) == result
