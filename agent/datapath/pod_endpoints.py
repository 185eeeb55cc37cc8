"""Which pods take part in policy, with which identity and address: the one rule the
datapath's plan (``agent.datapath.desired``) and the waypoint's policy checks share."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from agent.datapath.identity import LabelSet, allocate_identities, identity_labels
from agent.datapath.policy_plan import PodEndpoint, endpoint_from_pod
from agent.model.core import Pod

IPv4 = ipaddress.IPv4Address


@dataclass(frozen=True)
class PodEndpoints:
    """Every live pod's policy view, with identities from one allocation."""

    pairs: tuple[tuple[Pod, PodEndpoint], ...]
    collisions: tuple[str, ...]


PodMemo = dict[int, tuple[Pod, LabelSet, int, PodEndpoint | None]]
"""id(pod) -> (pod, its label set, its identity, its endpoint): what ``pod_endpoints``
derived from a Pod object last time (kept with the pod, so the id cannot be reused)."""


def pod_endpoints(pods: Iterable[Pod], memo: PodMemo | None = None) -> PodEndpoints:
    """The one rule for which pods take part in policy and with which identity (the
    datapath's maps and the waypoint's policy checks both use it).

    ``memo`` (updated in place) saves the per-pod work for Pod objects seen last time: the
    planner replans this part on every Pod change, at 100,000 Pods."""
    # A hostNetwork pod's IP is its node's: it is the host to policy, not an endpoint (as
    # Cilium has it), and two of them on a node would otherwise claim one address.
    live_pods = [
        p for p in pods
        if p.status.pod_ip and p.status.phase not in ("Succeeded", "Failed")
        and not p.spec.host_network
    ]
    earlier = memo if memo is not None else {}
    label_sets = []
    for pod in live_pods:
        seen = earlier.get(id(pod))
        if seen is not None and seen[0] is pod:
            label_sets.append(seen[1])
        else:
            label_sets.append(identity_labels(
                pod.metadata.namespace, pod.metadata.labels, pod.spec.service_account
            ))
    allocation = allocate_identities(label_sets)
    pairs = []
    fresh: PodMemo = {}
    for pod, label_set in zip(live_pods, label_sets, strict=True):
        identity = allocation.by_labels[label_set]
        seen = earlier.get(id(pod))
        if seen is not None and seen[0] is pod and seen[2] == identity:
            endpoint = seen[3]
        else:
            endpoint = endpoint_from_pod(pod, identity)
        fresh[id(pod)] = (pod, label_set, identity, endpoint)
        if endpoint is not None:  # None until the pod has an IPv4 address
            pairs.append((pod, endpoint))
    if memo is not None:
        memo.clear()
        memo.update(fresh)
    pairs, claims = one_pod_per_address(pairs)
    return PodEndpoints(tuple(pairs), tuple(allocation.collisions) + claims)


def _claim_order(pair: tuple[Pod, PodEndpoint]) -> tuple[float, str, str]:
    meta = pair[0].metadata
    created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else 0.0
    return (-created, meta.namespace, meta.name)


def one_pod_per_address(
    pairs: list[tuple[Pod, PodEndpoint]],
) -> tuple[list[tuple[Pod, PodEndpoint]], tuple[str, ...]]:
    """One pod per address, the same whatever order the pods came in: when two live pods
    claim one IP (an address handed on while its old pod is still listed, or a bad
    status), the newest holds it (address reuse), then the first by namespace/name; each
    clash is named. Without this the last pod listed won, so two agents (or one agent
    before and after a restart) could give one address different identities."""
    by_ip: dict[IPv4, list[tuple[Pod, PodEndpoint]]] = {}
    for pair in pairs:
        by_ip.setdefault(pair[1].ip, []).append(pair)
    if len(by_ip) == len(pairs):
        return pairs, ()
    kept, notes = [], []
    for ip, claimants in by_ip.items():
        winner = min(claimants, key=_claim_order) if len(claimants) > 1 else claimants[0]
        kept.append(winner)
        if len(claimants) > 1:
            others = ", ".join(sorted(f"{p.metadata.namespace}/{p.metadata.name}"
                                      for p, _ in claimants if p is not winner[0]))
            notes.append(f"Pod {winner[0].metadata.namespace}/{winner[0].metadata.name}: "
                         f"address {ip} also claimed by {others}: those are left out")
    return kept, tuple(sorted(notes))
