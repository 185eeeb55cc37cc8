"""AuthorizationPolicy's L4-only policies as per-client verdicts, for the client's node (pure).

Issue 14 asks that a policy reading only L4 attributes (identity, namespace, ServiceAccount,
ipBlock, port) be enforced in the kernel on the *client's* node, so a denied SYN never leaves
it. This module is that compilation: for each local client pod C and each destination
identity D whose applicable policies are all kernel-judgeable, the partition of the port
space into ranges with Istio's verdict (``authz.evaluate``: DENY wins, then ALLOW-if-any,
AUDIT ignored), and the policies to name in the flow. The decision is not re-implemented:
every range is evaluated by the same evaluator the waypoint uses, at one port of the range
(the verdict is constant between the ports the policies mention).

What goes to the kernel and what stays with the waypoint (``KernelAuthz.waypoint``):

- A destination is judged per identity (pods sharing labels, namespace and ServiceAccount:
  ``identity.identity_labels``). Every pod of one identity must have the same applicable
  policies; when they differ (a selector on a label identities leave out), the identity stays
  with the waypoint and an error says why.
- A policy that reads L7 attributes, names ``targetRefs`` (a Service or Gateway: judged
  where those are reached, the waypoint) or reads ``destination.ip`` (differs between pods
  of one identity) keeps the destination with the waypoint.
- The verdict ranges of one (client, destination) must fit ``MAX_PORT_RULES`` kernel rules;
  if not, the destination stays with the waypoint (fail over, never half-enforce).

``(UNKNOWN_CLIENT, D)`` holds the verdict for a client the plan does not know (a pod whose
entries are not written yet): deny everything, naming D's policies.

Every IP protocol is judged by the same port rules. Istio judges TCP only (its proxies see
nothing else); judging UDP too is stricter, never wider.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from agent.datapath.policy_plan import MAX_PORT_RULES, PodEndpoint
from agent.datapath.policy_ports import MAX_PORT
from agent.model.authz import Action, AuthorizationPolicy
from authz.applies import ROOT_NAMESPACE, selects_pod
from authz.evaluate import evaluate, key_of, needs_l7
from authz.request import Peer, Request

UNKNOWN_CLIENT = IPv4Address(0)
"""The client key of a destination's fallback entry: a client without its own entry."""

AuthzKey = tuple[IPv4Address, int]
"""(local client pod address or ``UNKNOWN_CLIENT``, destination identity)."""


@dataclass(frozen=True, order=True)
class PortVerdict:
    """Ports ``first..last`` (inclusive): ``allowed`` or not, and the policies
    ("namespace/name") behind it, as ``authz.Verdict.policies`` names them."""

    first: int
    last: int
    allowed: bool
    policies: tuple[str, ...] = ()

    def covers(self, port: int) -> bool:
        return self.first <= port <= self.last


@dataclass(frozen=True)
class KernelAuthz:
    """``enforced``: destination identity -> the policies the kernel enforces for it.
    ``verdicts``: (client, destination identity) -> the port partition 0..65535, sorted.
    ``waypoint``: destination identities whose policies only the waypoint can judge.
    ``errors``: why a destination could not be judged in the kernel when that is a fault."""

    enforced: Mapping[int, tuple[str, ...]]
    verdicts: Mapping[AuthzKey, tuple[PortVerdict, ...]]
    waypoint: frozenset[int]
    errors: tuple[str, ...] = ()


def kernel_refusal(policy: AuthorizationPolicy) -> str | None:
    """Why the kernel cannot judge ``policy`` (None: it can)."""
    if needs_l7(policy):
        return "reads L7 attributes (host, method, path, header, SNI)"
    if policy.spec.target_refs:
        return "targets a Service or Gateway, judged where it is reached (the waypoint)"
    for rule in policy.spec.rules:
        if any(c.key == "destination.ip" for c in rule.when):
            return "reads destination.ip, which differs between the pods of one identity"
    return None


def mentioned_ports(policies: Iterable[AuthorizationPolicy]) -> frozenset[int]:
    """Every port the policies' rules compare against (ports, notPorts, destination.port)."""
    found: set[int] = set()
    for policy in policies:
        for rule in policy.spec.rules:
            for to in rule.to:
                found.update(int(p) for p in to.operation.ports + to.operation.not_ports)
            for c in rule.when:
                if c.key == "destination.port":
                    found.update(int(p) for p in c.values + c.not_values)
    return frozenset(found)


def port_classes(ports: Collection[int]) -> tuple[tuple[int, int], ...]:
    """0..65535 cut so that each mentioned port is a range of its own: within one range
    every rule answers the same, so one evaluation decides the range."""
    cuts: list[tuple[int, int]] = []
    start = 0
    for port in sorted(p for p in ports if 0 <= p <= MAX_PORT):
        if port > start:
            cuts.append((start, port - 1))
        cuts.append((port, port))
        start = port + 1
    if start <= MAX_PORT:
        cuts.append((start, MAX_PORT))
    return tuple(cuts)


def client_verdicts(
    policies: Sequence[AuthorizationPolicy], client: PodEndpoint, trust_domain: str
) -> tuple[PortVerdict, ...]:
    """The port partition of ``client``'s connections to a destination ``policies`` apply
    to (sorted by namespace and name, as ``authz.applicable`` gives them)."""
    peer = Peer.of_pod(str(client.ip), trust_domain, client.namespace, client.service_account)
    merged: list[PortVerdict] = []
    for first, last in port_classes(mentioned_ports(policies)):
        verdict = evaluate(policies, Request(peer, port=first, l7=False))
        here = PortVerdict(first, last, verdict.allowed, verdict.policies)
        prev = merged[-1] if merged else None
        if prev is not None and (prev.allowed, prev.policies) == (here.allowed, here.policies):
            merged[-1] = PortVerdict(prev.first, last, prev.allowed, prev.policies)
        else:
            merged.append(here)
    return tuple(merged)


def compile_authz(
    policies: Sequence[AuthorizationPolicy],
    pods: Sequence[PodEndpoint],
    local_ips: Collection[IPv4Address],
    trust_domain: str = "cluster.local",
    root_namespace: str = ROOT_NAMESPACE,
) -> KernelAuthz:
    """The kernel's AuthorizationPolicy verdicts for the client pods at ``local_ips``.

    ``pods`` is every pod of the cluster with its identity (destinations are among them).
    """
    workload = sorted((p for p in policies if not p.spec.target_refs), key=key_of)
    by_identity: dict[int, dict[tuple[str, ...], list[str]]] = defaultdict(dict)
    chosen: dict[int, tuple[AuthorizationPolicy, ...]] = {}
    for pod in sorted(pods, key=lambda p: p.key):
        applying = tuple(p for p in workload if selects_pod(p, pod.namespace, pod.labels,
                                                             root_namespace))
        by_identity[pod.identity].setdefault(tuple(map(key_of, applying)), []).append(pod.key)
        chosen.setdefault(pod.identity, applying)
    errors: list[str] = []
    waypoint: set[int] = set()
    enforced: dict[int, tuple[AuthorizationPolicy, ...]] = {}
    for identity, variants in sorted(by_identity.items()):
        if len(variants) > 1:
            waypoint.add(identity)
            errors.append(_split_identity(identity, variants))
            continue
        applying = chosen[identity]
        if not any(p.spec.action is not Action.AUDIT for p in applying):
            continue  # nothing to enforce: AUDIT only records, in the waypoint
        if any(kernel_refusal(p) is not None for p in applying):
            waypoint.add(identity)
            continue
        enforced[identity] = applying
    clients = sorted((p for p in pods if p.ip in set(local_ips)), key=lambda p: p.ip)
    verdicts: dict[AuthzKey, tuple[PortVerdict, ...]] = {}
    for identity, applying in sorted(enforced.items()):
        names = tuple(key_of(p) for p in applying if p.spec.action is not Action.AUDIT)
        entries: dict[AuthzKey, tuple[PortVerdict, ...]] = {
            (UNKNOWN_CLIENT, identity): (PortVerdict(0, MAX_PORT, False, names),)
        }
        for client in clients:
            entries[(client.ip, identity)] = client_verdicts(applying, client, trust_domain)
        too_many = [key for key, ranges in entries.items() if len(ranges) > MAX_PORT_RULES]
        if too_many:
            waypoint.add(identity)
            errors.append(
                f"AuthorizationPolicy {', '.join(names)}: identity {identity} needs more than "
                f"{MAX_PORT_RULES} port ranges for client {too_many[0][0]}; judged in the "
                "waypoint instead of the kernel"
            )
            continue
        verdicts.update(entries)
    kept = {i: tuple(key_of(p) for p in a) for i, a in enforced.items() if i not in waypoint}
    return KernelAuthz(kept, verdicts, frozenset(waypoint), tuple(errors))


def _split_identity(identity: int, variants: Mapping[tuple[str, ...], list[str]]) -> str:
    parts = "; ".join(
        f"{', '.join(pods[:3])}{' …' if len(pods) > 3 else ''}: "
        f"{', '.join(names) or 'no policy'}"
        for names, pods in sorted(variants.items())
    )
    return (
        f"identity {identity}: its pods differ in the AuthorizationPolicies that select them "
        f"(a selector on a label identities leave out?): {parts}; judged in the waypoint"
    )


def decide(
    plan: KernelAuthz, client: IPv4Address, destination_identity: int, port: int
) -> PortVerdict | None:
    """The kernel's decision for a new connection (the mirror of the C lookup): None when
    the kernel does not judge that destination (no policy, or the waypoint does)."""
    if destination_identity not in plan.enforced:
        return None
    ranges = plan.verdicts.get((client, destination_identity))
    if ranges is None:
        ranges = plan.verdicts[(UNKNOWN_CLIENT, destination_identity)]
    return next(r for r in ranges if r.covers(port))
