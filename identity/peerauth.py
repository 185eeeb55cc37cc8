"""Which mutual-TLS mode a workload accepts: the PeerAuthentication-shaped policy's decision
(issue 11, item 3), pure. The datapath and the waypoint call ``effective_mode``; callers
convert their model objects (``agent.model.peerauth``) into ``Policy`` first.

Enrolment comes first: a namespace labelled ``tulle.io/mtls: "true"`` (exactly that value)
enrols its pods (``enrolled``). A PeerAuthentication means nothing for a workload that is not
enrolled: such a pod keeps the pure-kernel L4 path, plaintext, whatever mode a policy names;
the caller asks ``effective_mode`` only for enrolled pods.

Precedence, as Istio's (pilot's composePeerAuthentication):

- a *workload* policy: in the pod's namespace, with a non-empty ``selector`` whose labels
  the pod carries; a policy with a selector in the root namespace applies to no one;
- else a *namespace* policy: in the pod's namespace, no selector (or an empty one);
- else the *mesh* policy: in the root namespace (``tulle-system``), no selector;
- else PERMISSIVE.

A level whose mode is UNSET inherits from the level above it. Port-level settings apply only
from the winning workload policy and, for that port (the pod's own port, not a Service's),
win; a port-level UNSET inherits the workload's mode. Where several workload (or several
namespace, or mesh) policies qualify, the oldest by creationTimestamp wins, then the name
(Istio's rule); the others are ignored, not merged. The ``Decision`` names the policy whose
setting decided, for flows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

ENROL_LABEL = "tulle.io/mtls"
ROOT_NAMESPACE = "tulle-system"


class Mode(StrEnum):
    UNSET = "UNSET"  # inherit from the level above
    DISABLE = "DISABLE"  # plaintext only
    PERMISSIVE = "PERMISSIVE"  # mTLS and plaintext
    STRICT = "STRICT"  # mTLS only


class Level(StrEnum):
    """Which setting decided: a port-level override, or a policy of that scope."""

    PORT = "port"
    WORKLOAD = "workload"
    NAMESPACE = "namespace"
    MESH = "mesh"
    DEFAULT = "default"  # no policy set a mode


@dataclass(frozen=True, slots=True)
class Policy:
    """One PeerAuthentication, as the resolver reads it. ``selector``: its matchLabels (an
    empty map selects the whole namespace, as no selector does); ``ports``: port-level modes
    by port number; ``created``: its creationTimestamp (None sorts after every timestamp)."""

    namespace: str
    name: str
    mode: Mode = Mode.UNSET
    selector: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[int, Mode] = field(default_factory=dict)
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The mode (never UNSET), the level that set it, and that policy's namespace and name
    (None for the default)."""

    mode: Mode
    level: Level
    policy: tuple[str, str] | None = None


DEFAULT = Decision(Mode.PERMISSIVE, Level.DEFAULT)


def enrolled(namespace_labels: Mapping[str, str]) -> bool:
    """Whether a namespace's pods are enrolled in mTLS: its label ``tulle.io/mtls`` is
    exactly "true" (not "True", "yes" or "1")."""
    return namespace_labels.get(ENROL_LABEL) == "true"


def _oldest(policies: list[Policy]) -> Policy | None:
    # The oldest; a policy with no timestamp after all that have one; then the name.
    if not policies:
        return None
    return min(policies, key=lambda p: (p.created is None, p.created or datetime.min, p.name))


def effective_mode(
    pod_namespace: str,
    pod_labels: Mapping[str, str],
    port: int,
    policies: Iterable[Policy],
    root_namespace: str = ROOT_NAMESPACE,
) -> Decision:
    """The mode an enrolled pod accepts on ``port`` (its container port), and which policy
    decided it. Policies of other namespaces than the pod's and the root are ignored."""
    mesh: list[Policy] = []
    namespace: list[Policy] = []
    workload: list[Policy] = []
    for policy in policies:
        if not policy.selector:
            if policy.namespace == root_namespace:
                mesh.append(policy)
            elif policy.namespace == pod_namespace:
                namespace.append(policy)
        elif policy.namespace == pod_namespace and policy.namespace != root_namespace:
            if all(pod_labels.get(k) == v for k, v in policy.selector.items()):
                workload.append(policy)
    chosen = _oldest(workload)
    decision = DEFAULT
    for level, found in (
        (Level.MESH, _oldest(mesh)),
        (Level.NAMESPACE, _oldest(namespace)),
        (Level.WORKLOAD, chosen),
    ):
        if found is not None and found.mode is not Mode.UNSET:  # UNSET inherits
            decision = Decision(found.mode, level, (found.namespace, found.name))
    if chosen is not None:
        override = chosen.ports.get(port, Mode.UNSET)
        if override is not Mode.UNSET:
            decision = Decision(override, Level.PORT, (chosen.namespace, chosen.name))
    return decision
