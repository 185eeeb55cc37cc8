"""Which Services' traffic must go through the waypoint for AuthorizationPolicy (pure).

A workload policy the kernel can judge (``kernel_refusal`` None: L4 attributes only, no
targetRefs, no ``destination.ip``, not AUDIT, whose flows only the waypoint writes) is
enforced on each client's node (``agent/datapath/authz_l4.py``) and steers nothing. Every
other policy is enforced in the waypoint, and traffic it governs must reach the waypoint. A
Service is steered when a targetRef names it, or when such a workload policy of its
namespace (of any namespace, for one in the root namespace) could select one of its pods:
the policy's labels and the Service's selector do not disagree on a key. That needs no pod
(a pod in both must carry both label sets), so it errs only on the side of more: the
waypoint then judges each request by the endpoint's own policies (``applies``), so steering
too much costs a hop, never a decision. A Service without selector (endpoints by hand) is
steered whenever a workload policy covers its namespace. The datapath and the waypoint read
this one rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.model.authz import Action, AuthorizationPolicy
from agent.model.core import Service
from authz.applies import ROOT_NAMESPACE, SERVICE
from authz.evaluate import needs_l7


def kernel_refusal(policy: AuthorizationPolicy) -> str | None:
    """Why the kernel cannot judge ``policy`` on the client's node (None: it can)."""
    if needs_l7(policy):
        return "reads L7 attributes (host, method, path, header, SNI)"
    if policy.spec.action is Action.AUDIT:
        return "AUDIT records each matching request as a flow, in the waypoint"
    if policy.spec.target_refs:
        return "targets a Service or Gateway, judged where it is reached (the waypoint)"
    for rule in policy.spec.rules:
        if any(c.key == "destination.ip" for c in rule.when):
            return "reads destination.ip, which differs between the pods of one identity"
    return None


def steered_services(
    policies: Iterable[AuthorizationPolicy],
    services: Iterable[Service],
    root_namespace: str = ROOT_NAMESPACE,
) -> frozenset[tuple[str, str]]:
    """(namespace, name) of the Services whose requests the waypoint must judge."""
    named: set[tuple[str, str]] = set()
    selectors: dict[str, list[Mapping[str, str]]] = {}  # namespace ("" for all) -> labels
    for policy in policies:
        home = policy.metadata.namespace
        if policy.spec.target_refs:
            named.update(
                (home, ref.name) for ref in policy.spec.target_refs
                if (ref.group, ref.kind) == SERVICE
            )
            continue
        if kernel_refusal(policy) is None:
            continue  # judged in the kernel, on the client's node
        labels = policy.spec.selector.match_labels if policy.spec.selector else {}
        selectors.setdefault("" if home == root_namespace else home, []).append(labels)
    out = set()
    for svc in services:
        key = (svc.metadata.namespace, svc.metadata.name)
        wanted = selectors.get(key[0], []) + selectors.get("", [])
        if key in named or any(_may_share_pods(svc.spec.selector, w) for w in wanted):
            out.add(key)
    return frozenset(out)


def _may_share_pods(service: Mapping[str, str], policy: Mapping[str, str]) -> bool:
    """Whether a pod could match both label sets (no key with two values)."""
    if not service:
        return True  # endpoints by hand: any pod of the namespace may be behind it
    return all(service.get(k, v) == v for k, v in policy.items())
