"""The compiled policy of a node's endpoints, and the datapath's decision over it.

``PolicyPlan`` is what ``policy.compile_policy`` produces and the reconciler writes into the
policy maps. ``evaluate`` is the Python mirror of the C decision: for a new connection at
local endpoint E, direction D, peer address X with peer identity I, protocol P and
destination port N (E's port for ingress, the peer's for egress):

- E's direction D not enforced (no policy of that type selects E): allowed.
- Otherwise allowed iff a ``PortRule`` in ``identity_rules[(E, I, D)]`` or
  ``identity_rules[(E, WILDCARD, D)]`` matches (P, N), or the longest prefix among the
  ``cidr_rules`` keys of (E, D) containing X is a non-deny rule whose ports match (P, N).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address, IPv4Network
from socket import AF_INET, inet_pton

from agent.datapath.identity import WILDCARD
from agent.datapath.policy_cidr import CidrRule, longest_prefix_match
from agent.datapath.policy_ports import PROTOCOL_NUMBERS, NamedPorts, PortRule
from agent.model.core import Pod

__all__ = [
    "MAX_PORT_RULES",
    "CidrKey",
    "CidrRule",
    "Direction",
    "EndpointPolicy",
    "IdentityKey",
    "PodEndpoint",
    "PolicyPlan",
    "PortRule",
    "decide",
    "endpoint_from_pod",
    "evaluate",
    "lookup_cidr",
]
MAX_PORT_RULES = 16
"""Port rules per policy map value (the C array size)."""


class Direction(IntEnum):
    """Hubble's TrafficDirection numbers."""

    INGRESS = 1
    EGRESS = 2


@dataclass(frozen=True)
class PodEndpoint:
    """A pod as policy sees it. ``named_ports``: (port name, protocol number) -> port.
    ``service_account``: what it runs as (AuthorizationPolicy's sources, ``authz_l4``)."""

    namespace: str
    name: str
    ip: IPv4Address
    identity: int
    labels: Mapping[str, str]
    named_ports: NamedPorts
    service_account: str = "default"

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class EndpointPolicy:
    ip: IPv4Address
    identity: int
    ingress_enforced: bool
    egress_enforced: bool


IdentityKey = tuple[IPv4Address, int, Direction]
CidrKey = tuple[IPv4Address, Direction, IPv4Network]


@dataclass(frozen=True)
class PolicyPlan:
    """``endpoints``: one per local endpoint. ``identity_rules``: (endpoint, peer identity or
    WILDCARD, direction) -> allowed ports. ``cidr_rules``: (endpoint, direction, prefix) ->
    LPM entry. ``errors``: what could not compile, naming the object and field."""

    endpoints: Mapping[IPv4Address, EndpointPolicy]
    identity_rules: Mapping[IdentityKey, tuple[PortRule, ...]]
    cidr_rules: Mapping[CidrKey, CidrRule]
    errors: tuple[str, ...] = ()


def endpoint_from_pod(pod: Pod, identity: int) -> PodEndpoint | None:
    """The policy view of ``pod``; None until it has an IPv4 address."""
    try:  # inet_pton: ten times faster than ipaddress's parser, and as strict
        address = IPv4Address(inet_pton(AF_INET, pod.status.pod_ip or ""))
    except (OSError, ValueError):
        return None
    named: dict[tuple[str, int], int] = {}
    for container in pod.spec.containers:
        for port in container.ports:
            if port.name:
                named.setdefault((port.name, PROTOCOL_NUMBERS[port.protocol]), port.container_port)
    return PodEndpoint(
        namespace=pod.metadata.namespace,
        name=pod.metadata.name,
        ip=address,
        identity=identity,
        labels=pod.metadata.labels,
        named_ports=named,
        service_account=pod.spec.service_account,
    )


def lookup_cidr(
    plan: PolicyPlan, endpoint: IPv4Address, direction: Direction, address: IPv4Address
) -> tuple[IPv4Network, CidrRule] | None:
    """The LPM entry the datapath would find for ``address`` at ``endpoint``, if any."""
    table = {
        network: rule
        for (ip, side, network), rule in plan.cidr_rules.items()
        if ip == endpoint and side == direction
    }
    return longest_prefix_match(table, address)


NOT_ENFORCED = -1
"""``decide``'s answer when no policy selects the endpoint in that direction."""


def _first_match(rules: tuple[PortRule, ...], protocol: int, port: int) -> PortRule | None:
    return next((rule for rule in rules if rule.matches(protocol, port)), None)


def decide(
    plan: PolicyPlan,
    endpoint: IPv4Address,
    direction: Direction,
    peer_ip: IPv4Address,
    peer_identity: int,
    protocol: int,
    port: int,
) -> int | None:
    """The datapath's decision on a new connection (see the module docstring): None when
    denied; else the policy set id of the rule that allowed it, as the kernel reports it
    (``policy_names``), or ``NOT_ENFORCED``.

    ``port`` is the destination port: the endpoint's for ingress, the peer's for egress.
    An address that is not a local endpoint of the plan has no policy (allowed).
    """
    policy = plan.endpoints.get(endpoint)
    if policy is None:
        return NOT_ENFORCED
    enforced = policy.ingress_enforced if direction == Direction.INGRESS else policy.egress_enforced
    if not enforced:
        return NOT_ENFORCED
    for identity in (peer_identity, WILDCARD):
        rules = plan.identity_rules.get((endpoint, identity, direction), ())
        rule = _first_match(rules, protocol, port)
        if rule is not None:
            return rule.policy
    match = lookup_cidr(plan, endpoint, direction, peer_ip)
    if match is None or match[1].deny:
        return None
    rule = _first_match(match[1].ports, protocol, port)
    return None if rule is None else rule.policy


def evaluate(
    plan: PolicyPlan,
    endpoint: IPv4Address,
    direction: Direction,
    peer_ip: IPv4Address,
    peer_identity: int,
    protocol: int,
    port: int,
) -> bool:
    """Whether ``decide`` allows the connection."""
    return decide(plan, endpoint, direction, peer_ip, peer_identity, protocol, port) is not None
