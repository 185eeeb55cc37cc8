"""Fitting the policy plan into the policy maps' fixed sizes (pure).

One endpoint's huge policy must not keep every other endpoint's policy out of the maps. The
unit of fitting is one endpoint's policy in one direction (its policy_v1 and policy_cidr_v1
entries together): smaller units are placed first, so a unit that does not fit is the large
one, and a unit is written whole or not at all. A unit that did not fit fails closed: its
endpoint gets an overflow flag for that direction and the datapath drops that direction's
new connections with DROP_POLICY_MAP_OVERFLOW, instead of enforcing half a policy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

from agent.datapath.policy_plan import CidrKey, CidrRule, Direction, IdentityKey, PortRule
from agent.model.networking import NetworkPolicy

IDENTITY_TABLE = "policy_v1"
CIDR_TABLE = "policy_cidr_v1"
Unit = tuple[IPv4Address, Direction]


@dataclass(frozen=True)
class Overflow:
    """A unit that did not fit, and why (planned sizes, or the kernel's refusal)."""

    endpoint: IPv4Address
    direction: Direction
    reason: str


@dataclass(frozen=True)
class PolicyFit:
    identity_rules: dict[IdentityKey, tuple[PortRule, ...]]
    cidr_rules: dict[CidrKey, CidrRule]
    overflows: dict[Unit, Overflow]


def fit_policy(
    identity_rules: Mapping[IdentityKey, tuple[PortRule, ...]],
    cidr_rules: Mapping[CidrKey, CidrRule],
    capacity: Mapping[str, int],
) -> PolicyFit:
    """The entries to write, and the units left out. ``capacity``: max_entries per table."""
    ids: dict[Unit, list[IdentityKey]] = defaultdict(list)
    cidrs: dict[Unit, list[CidrKey]] = defaultdict(list)
    for key in identity_rules:
        ids[(key[0], key[2])].append(key)
    for ckey in cidr_rules:
        cidrs[(ckey[0], ckey[1])].append(ckey)
    units = sorted(set(ids) | set(cidrs), key=lambda u: (len(ids[u]) + len(cidrs[u]), u))
    used = {IDENTITY_TABLE: 0, CIDR_TABLE: 0}
    fit = PolicyFit({}, {}, {})
    for unit in units:
        need = {IDENTITY_TABLE: len(ids[unit]), CIDR_TABLE: len(cidrs[unit])}
        short = [t for t, n in need.items() if n and used[t] + n > capacity[t]]
        if short:
            reason = "; ".join(
                f"needs {need[t]} {t} entries, {max(capacity[t] - used[t], 0)} of "
                f"{capacity[t]} left"
                for t in short
            )
            fit.overflows[unit] = Overflow(unit[0], unit[1], reason)
            continue
        for t, n in need.items():
            used[t] += n
        fit.identity_rules.update((k, identity_rules[k]) for k in ids[unit])
        fit.cidr_rules.update((k, cidr_rules[k]) for k in cidrs[unit])
    return fit


def selecting_policies(
    policies: Iterable[NetworkPolicy],
    namespace: str,
    labels: Mapping[str, str],
    direction: Direction,
) -> list[str]:
    """namespace/name of the NetworkPolicies that make up an endpoint's policy in a direction."""
    found = []
    for policy in policies:
        spec = policy.spec
        affects = spec.affects_ingress if direction == Direction.INGRESS else spec.affects_egress
        if policy.metadata.namespace == namespace and affects and spec.pod_selector.matches(labels):
            found.append(policy.metadata.key)
    return sorted(found)
