"""Which Services' traffic must go through the waypoint for AuthorizationPolicy (pure).

The kernel does not enforce AuthorizationPolicy yet, so every policy, L4-only or not, is
enforced in the waypoint, and traffic it governs must reach the waypoint. The rule errs on
the side of more: a Service is steered when a targetRef names it, or when it lives in a
namespace with a workload policy (selector or namespace-wide; every namespace for a policy
in the root namespace), whichever pods it selects. The waypoint then judges each request by
the endpoint's own policies (``applies``), so steering too much costs a hop, never a
decision. The datapath and the waypoint both read this one rule.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    namespaces: set[str] = set()
    everywhere = False
    for policy in policies:
        home = policy.metadata.namespace
        if policy.spec.target_refs:
            named.update(
                (home, ref.name) for ref in policy.spec.target_refs
                if (ref.group, ref.kind) == SERVICE
            )
        elif home == root_namespace:
            everywhere = True
        else:
            namespaces.add(home)
    out = set()
    for svc in services:
        key = (svc.metadata.namespace, svc.metadata.name)
        if everywhere or key[0] in namespaces or key in named:
            out.add(key)
    return frozenset(out)
