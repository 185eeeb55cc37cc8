"""Which Services' traffic must go through the waypoint for AuthorizationPolicy (pure).

The kernel does not enforce AuthorizationPolicy yet, so every policy, L4-only or not, is
enforced in the waypoint, and traffic it governs must reach the waypoint. A Service is
steered when a targetRef names it, or when a workload policy of its namespace (of any
namespace, for one in the root namespace) could select one of its pods: the policy's labels
and the Service's selector do not disagree on a key. That needs no pod (a pod in both must
carry both label sets), so it errs only on the side of more: the waypoint then judges each
request by the endpoint's own policies (``applies``), so steering too much costs a hop,
never a decision. A Service without selector (endpoints by hand) is steered whenever a
workload policy covers its namespace. The datapath and the waypoint read this one rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.model.authz import AuthorizationPolicy
from agent.model.core import Service
from authz.applies import ROOT_NAMESPACE, SERVICE


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
