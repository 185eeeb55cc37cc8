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
  where those are reached, the waypoint), reads ``destination.ip`` (differs between pods
  of one identity) or is an AUDIT policy (its matches are flows only the waypoint writes)
  keeps the destination with the waypoint.
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

from agent.datapath.cdefs import LIB_DIR, defines
from agent.datapath.policy_names import PolicyNames
from agent.datapath.policy_plan import MAX_PORT_RULES, PodEndpoint
from agent.datapath.policy_ports import ANY_PROTOCOL, MAX_PORT, PortRule
from agent.model.authz import Action, AuthorizationPolicy
from authz.applies import ROOT_NAMESPACE, selects_pod
from authz.evaluate import evaluate, key_of
from authz.request import Peer, Request
from authz.steer import kernel_refusal

UNKNOWN_CLIENT = IPv4Address(0)
"""The client key of a destination's fallback entry: a client without its own entry."""

AuthzKey = tuple[IPv4Address, int]
"""(local client pod address or ``UNKNOWN_CLIENT``, destination identity)."""
AuthzEntry = tuple[int, int, int, int]
"""One ``struct authz_range`` of bpf/lib/authz.h: (first, last, AUTHZ_F_* flags, policy id)."""

_FLAGS = defines(LIB_DIR / "authz.h", "AUTHZ_F_")
AUTHZ_F_ALLOW, AUTHZ_F_BY_ALLOW = _FLAGS["AUTHZ_F_ALLOW"], _FLAGS["AUTHZ_F_BY_ALLOW"]

AUTHZ_NAMES = PolicyNames()
"""The agent's AuthorizationPolicy ids (a range's ``policy``): ``kernel_entries`` fills it,
the flow decoder reads it to name the policies behind a kernel denial. Apart from the
NetworkPolicy registry, so a name never changes kind."""


@dataclass(frozen=True, order=True)
class PortVerdict:
    """Ports ``first..last`` (inclusive): ``allowed`` or not, and the policies
    ("namespace/name") behind it, as ``authz.Verdict.policies`` names them."""

    first: int
    last: int
    allowed: bool
    policies: tuple[str, ...] = ()
    by_allow: bool = False  # denied because no ALLOW matched (POLICY_DENIED, not _DENY)

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
        here = PortVerdict(first, last, verdict.allowed, verdict.policies, verdict.by_allow)
        prev = merged[-1] if merged else None
        if prev is not None and _same(prev, here):
            merged[-1] = PortVerdict(prev.first, last, prev.allowed, prev.policies, prev.by_allow)
        else:
            merged.append(here)
    return tuple(merged)


def _same(a: PortVerdict, b: PortVerdict) -> bool:
    return (a.allowed, a.policies, a.by_allow) == (b.allowed, b.policies, b.by_allow)


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
    if not workload:  # the common case: no pass over every pod of the cluster
        return KernelAuthz({}, {}, frozenset())
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
    wanted = set(local_ips)
    clients = sorted((p for p in pods if p.ip in wanted), key=lambda p: p.ip)
    verdicts: dict[AuthzKey, tuple[PortVerdict, ...]] = {}
    for identity, applying in sorted(enforced.items()):
        names = tuple(key_of(p) for p in applying if p.spec.action is not Action.AUDIT)
        entries: dict[AuthzKey, tuple[PortVerdict, ...]] = {
            (UNKNOWN_CLIENT, identity): (PortVerdict(0, MAX_PORT, False, names, True),)
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


def kernel_entries(
    plan: KernelAuthz, names: PolicyNames = AUTHZ_NAMES
) -> dict[AuthzKey, tuple[AuthzEntry, ...]]:
    """authz_v1's entries: each range with its flags and the id of the policies it names
    (learnt by ``names``: an id stands for those names over that port range)."""
    out: dict[AuthzKey, tuple[AuthzEntry, ...]] = {}
    for key, ranges in plan.verdicts.items():
        entries = []
        for r in ranges:
            flags = AUTHZ_F_ALLOW if r.allowed else AUTHZ_F_BY_ALLOW if r.by_allow else 0
            rule = PortRule(ANY_PROTOCOL, r.first, r.last)
            pid = names.learn((name, rule) for name in r.policies) if r.policies else 0
            entries.append((r.first, r.last, flags, pid))
        out[key] = tuple(entries)
    return out
