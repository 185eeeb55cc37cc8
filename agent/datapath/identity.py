"""Security identities: a number per (namespace, security-relevant labels), no coordination.

Every pod gets the identity of its label set: the pod's labels minus those that describe how
a controller made it rather than what it is (``EXCLUDED_LABEL_KEYS``), plus its namespace and
its ServiceAccount (so AuthorizationPolicy's ``namespaces``, ``serviceAccounts`` and
``principals`` map to sets of identities, as Cilium's ``io.cilium.k8s.policy.serviceaccount``
label does for its policies).
The number is a SHA-256 hash of that set, so every node computes the same number for the
same pod without talking to any other node (Cilium allocates through a kvstore or CRDs
instead; Tulle trades that for a collision check). Pods that share a label set share an
identity, and policy is written against identities, not addresses.

Collisions (two label sets, one number) are found by ``allocate_identities``, which sees
every label set in the cluster and resolves them deterministically: the result depends only
on the set of label sets, so nodes that see the same store agree. A collision's loser may
change number when the cluster's label sets change; its policy entries follow.

Reserved numbers sit below ``MIN_POD_IDENTITY`` and never come out of the hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

WILDCARD = 0
"""Policy keys only: "any peer". Never the identity of a real peer."""
HOST = 1
"""The local node (its addresses, and processes in its root network namespace)."""
WORLD = 2
"""Any address outside the cluster."""
REMOTE_NODE = 6
"""Another node of the cluster."""
WAYPOINT = 8
"""The per-node L7 waypoint (bpf/lib/endpoints.h IDENTITY_WAYPOINT): admitted like the node."""

RESERVED: Mapping[int, str] = {
    WILDCARD: "wildcard",
    HOST: "host",
    WORLD: "world",
    REMOTE_NODE: "remote-node",
}

MIN_POD_IDENTITY = 256
"""Pod identities are in ``[MIN_POD_IDENTITY, MAX_POD_IDENTITY)``; lower numbers are reserved."""
MAX_POD_IDENTITY = 2**24

NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
"""Added to every label set, so equal labels in two namespaces are two identities."""
SERVICE_ACCOUNT_LABEL = "io.tulle.policy.serviceaccount"
"""Added to every label set: the pod's ServiceAccount (``default`` when unset), so two pods
with equal labels running as two ServiceAccounts are two identities."""
DEFAULT_SERVICE_ACCOUNT = "default"

EXCLUDED_LABEL_KEYS: frozenset[str] = frozenset(
    {
        # Deployment/ReplicaSet: one value per rollout; would split an app per revision.
        "pod-template-hash",
        # StatefulSet and DaemonSet revisions, and the per-replica identity of a StatefulSet.
        "controller-revision-hash",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "pod-template-generation",
        # Jobs: unique per Job run.
        "batch.kubernetes.io/controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/job-completion-index",
        "controller-uid",
        "job-name",
    }
)
"""Label keys that say how a controller made a pod, not what the pod is. Keeping them would
give every rollout or replica its own identity (identity churn, huge policy maps) without
adding anything a policy should select on. Selectors on these keys still select pods, but
policy resolves to identities, so they cannot tell apart pods that differ only in them."""

LabelSet = tuple[tuple[str, str], ...]
"""Sorted ``(key, value)`` pairs; the input of ``identity_for``."""


def identity_labels(
    namespace: str, labels: Mapping[str, str], service_account: str = DEFAULT_SERVICE_ACCOUNT
) -> LabelSet:
    """The security-relevant labels of a pod in ``namespace`` running as ``service_account``,
    sorted, namespace and ServiceAccount included.

    A pod's own ``io.kubernetes.pod.namespace`` or ``SERVICE_ACCOUNT_LABEL`` label is
    replaced by the real value, so a pod cannot claim another namespace's or
    ServiceAccount's identity by labelling itself.
    """
    relevant = {
        key: value
        for key, value in labels.items()
        if key not in EXCLUDED_LABEL_KEYS and key not in (NAMESPACE_LABEL, SERVICE_ACCOUNT_LABEL)
    }
    relevant[NAMESPACE_LABEL] = namespace
    relevant[SERVICE_ACCOUNT_LABEL] = service_account or DEFAULT_SERVICE_ACCOUNT
    return tuple(sorted(relevant.items()))


@lru_cache(maxsize=1 << 17)
def identity_for(label_set: LabelSet) -> int:
    """The hashed identity of ``label_set``: stable across processes, nodes and versions.

    Length-prefixed UTF-8 keys and values go through SHA-256; the first 8 bytes, reduced
    into the pod range, are the number. (Python's ``hash()`` is salted per process.)
    """
    digest = hashlib.sha256()
    for key, value in sorted(label_set):
        for part in (key, value):
            data = part.encode()
            digest.update(len(data).to_bytes(4, "big"))
            digest.update(data)
    number = int.from_bytes(digest.digest()[:8], "big")
    return MIN_POD_IDENTITY + number % (MAX_POD_IDENTITY - MIN_POD_IDENTITY)


def format_labels(label_set: LabelSet) -> str:
    """``{k=v,k2=v2}``: how label sets appear in messages."""
    return "{" + ",".join(f"{key}={value}" for key, value in label_set) + "}"


@dataclass(frozen=True)
class IdentityAllocation:
    """``by_labels``: every input label set's identity. ``collisions``: one readable line per
    label set that lost its hashed number to another and was moved."""

    by_labels: Mapping[LabelSet, int]
    collisions: tuple[str, ...] = ()


def allocate_identities(label_sets: Iterable[LabelSet]) -> IdentityAllocation:
    """Identities for every label set, with collisions detected and resolved.

    The sets are taken in canonical (sorted) order. Each hashed number goes to the first set
    that hashes to it. The others probe upward (wrapping inside the pod range) to the next
    number that is neither another set's hashed number nor already handed out. Only the set
    of inputs matters, not their order or multiplicity.
    """
    ordered = sorted({tuple(sorted(label_set)) for label_set in set(label_sets)})
    hashed = {label_set: identity_for(label_set) for label_set in ordered}
    owner: dict[int, LabelSet] = {}
    for label_set in ordered:
        owner.setdefault(hashed[label_set], label_set)
    taken = set(owner)
    by_labels: dict[LabelSet, int] = {}
    collisions: list[str] = []
    for label_set in ordered:
        number = hashed[label_set]
        if owner[number] == label_set:
            by_labels[label_set] = number
            continue
        moved = _next_free(number, taken)
        taken.add(moved)
        by_labels[label_set] = moved
        collisions.append(
            f"identity {number}: {format_labels(label_set)} collides with "
            f"{format_labels(owner[number])}, which keeps it; moved to {moved}"
        )
    return IdentityAllocation(by_labels=by_labels, collisions=tuple(collisions))


def _next_free(number: int, taken: set[int]) -> int:
    span = MAX_POD_IDENTITY - MIN_POD_IDENTITY
    for step in range(1, span):
        candidate = MIN_POD_IDENTITY + (number - MIN_POD_IDENTITY + step) % span
        if candidate not in taken:
            return candidate
    raise RuntimeError("pod identity space exhausted")
