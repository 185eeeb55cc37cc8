"""Fitting the policy plan into the policy maps' fixed sizes, and naming what did not fit
(pure).

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

from agent.datapath.desired import ClusterView, DesiredDatapath
from agent.datapath.policy_plan import CidrKey, CidrRule, Direction, IdentityKey, PortRule
from agent.datapath.services import ServiceKey
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


def overflow_error(overflow: Overflow, view: ClusterView, desired: DesiredDatapath) -> str:
    """The health/log line for a policy unit left out of the maps, naming its pod and the
    NetworkPolicies behind it."""
    side = overflow.direction.name.lower()
    ep = desired.endpoints.get(overflow.endpoint)
    who, policies = str(overflow.endpoint), []
    if ep is not None:
        who = f"pod {ep.namespace}/{ep.name} ({overflow.endpoint})"
        pod = next(
            (
                p
                for p in view.pods
                if (p.metadata.namespace, p.metadata.name) == (ep.namespace, ep.name)
            ),
            None,
        )
        if pod is not None:
            policies = selecting_policies(
                view.policies, ep.namespace, pod.metadata.labels, overflow.direction
            )
    return (
        f"policy map overflow: the {side} policy of {who} did not fit ({overflow.reason}); "
        f"its new {side} connections are dropped (POLICY_MAP_OVERFLOW) until it fits. "
        f"NetworkPolicies: {', '.join(policies) or 'unknown'}"
    )


def service_error(key: ServiceKey, reason: str, desired: DesiredDatapath) -> str:
    entry = desired.services.entries.get(key)
    what = f"Service {entry.namespace}/{entry.name}" if entry else "Gateway listener"
    return (
        f"lb map overflow: {what} {key.vip}:{key.port} did not fit ({reason}); it keeps its "
        "previous backends, or is not served if it is new, until it fits"
    )
