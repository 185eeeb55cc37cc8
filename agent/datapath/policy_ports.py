"""Port rules of the policy maps: what one NetworkPolicyPort becomes, and how sets merge.

A ``PortRule`` is one (protocol, inclusive port range) entry of a policy map value, with 0
standing for "any protocol" and 0..65535 for "any port". Rule sets are kept normalised, so
that equal sets are equal tuples and the C side can scan a short sorted array:
sorted, overlapping or adjacent ranges of one protocol merged, and anything covered by an
any-protocol range dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.model.meta import Protocol
from agent.model.networking import NetworkPolicyPort

ANY_PROTOCOL = 0
MAX_PORT = 65535

PROTOCOL_NUMBERS: Mapping[Protocol, int] = {
    Protocol.TCP: 6,
    Protocol.UDP: 17,
    Protocol.SCTP: 132,
}
"""IANA protocol numbers, as the datapath sees them in the IP header."""

PROTOCOL_NAMES: Mapping[int, str] = {
    ANY_PROTOCOL: "ANY",
    **{number: protocol.value for protocol, number in PROTOCOL_NUMBERS.items()},
}

NamedPorts = Mapping[tuple[str, int], int]
"""(port name, protocol number) -> port number, as declared by a pod's containers."""


@dataclass(frozen=True, order=True)
class PortRule:
    """Allow ``protocol`` (0: any) on ports ``first..last`` inclusive (0..65535: any).

    ``policy``: the policy set id of the map value the rule sits in (``policy_names``), which
    the kernel hands back when the rule allows a connection; 0 while the rule is being
    compiled. It is part of equality, so a value whose policies change is rewritten."""

    protocol: int
    first: int
    last: int
    policy: int = 0

    def matches(self, protocol: int, port: int) -> bool:
        return self.protocol in (ANY_PROTOCOL, protocol) and self.first <= port <= self.last

    def __str__(self) -> str:
        name = PROTOCOL_NAMES.get(self.protocol, str(self.protocol))
        if (self.first, self.last) == (0, MAX_PORT):
            return f"{name}/any"
        if self.first == self.last:
            return f"{name}/{self.first}"
        return f"{name}/{self.first}-{self.last}"


ANY_PORT = PortRule(ANY_PROTOCOL, 0, MAX_PORT)
"""A rule without ``ports``: every protocol, every port."""


def fixed_port_rules(ports: Iterable[NetworkPolicyPort]) -> tuple[PortRule, ...]:
    """The rules of the numeric and portless entries of ``ports`` (named ones are skipped:
    see ``named_port_rules``). An empty ``ports`` list is not handled here: it means
    ``ANY_PORT``, and only the caller knows whether the list was empty."""
    rules = []
    for port in ports:
        protocol = PROTOCOL_NUMBERS[port.protocol]
        if port.port is None:
            rules.append(PortRule(protocol, 0, MAX_PORT))
        elif isinstance(port.port, int):
            last = port.end_port if port.end_port is not None else port.port
            rules.append(PortRule(protocol, port.port, last))
    return tuple(rules)


def named_port_rules(
    ports: Iterable[NetworkPolicyPort], named_ports: NamedPorts
) -> tuple[PortRule, ...]:
    """The rules of the named entries of ``ports``, resolved against one pod's named ports.

    A name the pod does not declare (for that protocol) contributes nothing.
    """
    rules = []
    for port in ports:
        if isinstance(port.port, str):
            protocol = PROTOCOL_NUMBERS[port.protocol]
            number = named_ports.get((port.port, protocol))
            if number is not None:
                rules.append(PortRule(protocol, number, number))
    return tuple(rules)


def has_named_ports(ports: Iterable[NetworkPolicyPort]) -> bool:
    return any(isinstance(port.port, str) for port in ports)


def normalise(rules: Iterable[PortRule]) -> tuple[PortRule, ...]:
    """``rules`` sorted and merged: one rule per maximal range of each protocol, and no
    protocol-specific rule that an any-protocol rule already covers."""
    merged: list[PortRule] = []
    for rule in sorted(set(rules)):  # unstamped (policy 0): ids are set after merging
        last = merged[-1] if merged else None
        if last is not None and last.protocol == rule.protocol and rule.first <= last.last + 1:
            merged[-1] = PortRule(rule.protocol, last.first, max(last.last, rule.last))
        else:
            merged.append(rule)
    wildcard = [rule for rule in merged if rule.protocol == ANY_PROTOCOL]
    return tuple(
        rule
        for rule in merged
        if rule.protocol == ANY_PROTOCOL
        or not any(w.first <= rule.first and rule.last <= w.last for w in wildcard)
    )


def ports_match(rules: Iterable[PortRule], protocol: int, port: int) -> bool:
    return any(rule.matches(protocol, port) for rule in rules)


def format_rules(rules: Iterable[PortRule]) -> str:
    return ", ".join(str(rule) for rule in rules) or "nothing"
