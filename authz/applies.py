"""Which AuthorizationPolicies apply to a request's destination (pure).

As Istio: a policy with a selector applies to the pods of its namespace whose labels match;
without selector or targetRefs, to every pod of its namespace; in the root namespace
(``tulle-system``, as PeerAuthentication's mesh policy) to the matching pods of every
namespace. A policy with targetRefs applies to requests for that Service (through the
waypoint) or arriving at that Gateway, not to pods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.model.authz import AuthorizationPolicy
from authz.evaluate import key_of

ROOT_NAMESPACE = "tulle-system"
SERVICE = ("", "Service")
GATEWAY = ("gateway.networking.k8s.io", "Gateway")


def selects_pod(
    policy: AuthorizationPolicy,
    namespace: str,
    labels: Mapping[str, str],
    root_namespace: str = ROOT_NAMESPACE,
) -> bool:
    spec = policy.spec
    if spec.target_refs:
        return False
    home = policy.metadata.namespace
    if home != namespace and home != root_namespace:
        return False
    wanted = spec.selector.match_labels if spec.selector is not None else {}
    return all(labels.get(k) == v for k, v in wanted.items())


def targets(policy: AuthorizationPolicy, kind: tuple[str, str], namespace: str, name: str) -> bool:
    """Whether a targetRef of the policy names this Service or Gateway."""
    if policy.metadata.namespace != namespace:
        return False
    return any((r.group, r.kind) == kind and r.name == name for r in policy.spec.target_refs)


@dataclass(frozen=True, slots=True)
class Destination:
    """A request's destination as the waypoint knows it: the pod (its namespace and labels;
    None when the endpoint is no pod it knows), the Service it was routed through and the
    Gateway it arrived at ("namespace", "name"), when any."""

    pod: tuple[str, Mapping[str, str]] | None = None
    service: tuple[str, str] | None = None
    gateway: tuple[str, str] | None = None


def applicable(
    policies: Iterable[AuthorizationPolicy],
    destination: Destination,
    root_namespace: str = ROOT_NAMESPACE,
) -> tuple[AuthorizationPolicy, ...]:
    """The policies for ``destination``, sorted by namespace and name (so a denial names
    the same policy every time)."""
    found = []
    for policy in policies:
        if destination.pod is not None and selects_pod(policy, *destination.pod, root_namespace):
            found.append(policy)
        elif destination.service is not None and targets(policy, SERVICE, *destination.service):
            found.append(policy)
        elif destination.gateway is not None and targets(policy, GATEWAY, *destination.gateway):
            found.append(policy)
    return tuple(sorted(found, key=key_of))
