"""The endpoints part of the desired datapath (pure): what Nodes, Pods, Namespaces,
NetworkPolicies and AuthorizationPolicies decide for one node: its local endpoints with
their identities and enforcement flags, the cluster-wide ipcache, the policy entries, and
the kernel's AuthorizationPolicy verdicts (``plan_endpoints``); where each node's waypoint
listens (``waypoint_address``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.datapath.authz_l4 import AuthzEntry, AuthzKey, compile_authz, kernel_entries
from agent.datapath.flags import (
    EP_F_AUTHZ_KERNEL,
    EP_F_EGRESS_ENFORCED,
    EP_F_INGRESS_ENFORCED,
    EP_F_MTLS,
)
from agent.datapath.identity import (
    HOST,
    REMOTE_NODE,
    WAYPOINT,
)
from agent.datapath.pod_endpoints import PodMemo, pod_endpoints
from agent.datapath.policy import compile_policy
from agent.datapath.policy_plan import (
    CidrKey,
    CidrRule,
    Direction,
    IdentityKey,
    PodEndpoint,
    PortRule,
)
from agent.datapath.view import ClusterView
from agent.model.authz import AuthorizationPolicy
from agent.model.core import Pod
from agent.model.node import Node
from authz.applies import selects_pod
from identity.peerauth import enrolled
from identity.spiffe import DEFAULT_TRUST_DOMAIN

IPv4 = ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    namespace: str
    name: str
    ip: IPv4
    identity: int
    flags: int


def node_addresses(node: Node) -> list[IPv4]:
    """The node's InternalIP and its own address in its pod CIDR (the pods' gateway)."""
    found: list[IPv4] = []
    internal = node.status.address("InternalIP")
    if internal:
        found.append(IPv4(internal))
    if node.spec.pod_cidr:
        found.append(ipaddress.IPv4Network(node.spec.pod_cidr).network_address + 1)
    return found


def waypoint_address(node: Node) -> IPv4 | None:
    """Where a node's waypoint listens, by the cluster's rule: the last host of the node's
    pod CIDR (never handed to a pod). Only Node.spec, which the node controller owns,
    decides it; nothing a user can write on the Node (annotations, labels) does."""
    if not node.spec.pod_cidr:
        return None
    try:
        network = ipaddress.ip_network(node.spec.pod_cidr, strict=False)
    except ValueError:
        return None
    if not isinstance(network, ipaddress.IPv4Network) or network.num_addresses < 4:
        return None
    return network.broadcast_address - 1


@dataclass(frozen=True)
class EndpointsPart:
    """The part of the desired state that Nodes, Pods, Namespaces and NetworkPolicies decide:
    local endpoints, the ipcache and the policy entries (``local``: the local endpoints'
    policy views, for the consumer routes' clients)."""

    endpoints: Mapping[IPv4, LocalEndpoint]
    ipcache: Mapping[IPv4, int]
    identity_rules: Mapping[IdentityKey, tuple[PortRule, ...]]
    cidr_rules: Mapping[CidrKey, CidrRule]
    local: tuple[PodEndpoint, ...]
    errors: tuple[str, ...]
    pods: tuple[tuple[Pod, PodEndpoint], ...] = ()  # every pod at its address (for mtls_plan)
    authz: Mapping[AuthzKey, tuple[AuthzEntry, ...]] = field(default_factory=dict)


def plan_endpoints(
    view: ClusterView,
    node_name: str,
    waypoint: tuple[IPv4, int] | None = None,
    memo: PodMemo | None = None,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
) -> EndpointsPart:
    """Reads only ``view``'s nodes, pods, namespaces, policies and AuthorizationPolicies
    (``memo``: see ``pod_endpoints``; ``trust_domain``: of the principals policies name)."""
    ipcache: dict[IPv4, int] = {}
    waypoint_errors = []
    waypoints = {waypoint_address(n) for n in view.nodes if n.metadata.name != node_name}
    waypoints |= {waypoint[0]} if waypoint is not None else set()
    for node in sorted(view.nodes, key=lambda n: n.metadata.name):  # errors in one order
        for address in node_addresses(node):
            if address in waypoints:
                # A Node claiming a waypoint's address must not strip its waypoint identity
                # (a pod could then dial that waypoint, and its traffic would meet policy).
                waypoint_errors.append(
                    f"Node {node.metadata.name}: address {address} is a node's waypoint "
                    "address: ignored"
                )
                continue
            ipcache[address] = HOST if node.metadata.name == node_name else REMOTE_NODE
        by_rule = waypoint_address(node)
        if by_rule is not None and node.metadata.name != node_name:
            ipcache[by_rule] = WAYPOINT
        elif node.metadata.name == node_name and waypoint and waypoint[0] != by_rule:
            waypoint_errors.append(
                f"Node {node_name}: --waypoint {waypoint[0]} is not the last host of "
                f"spec.podCIDR ({by_rule}): other nodes will not admit this waypoint's traffic"
            )
    if waypoint is not None:
        ipcache[waypoint[0]] = WAYPOINT
    found = pod_endpoints(view.pods, memo)
    pairs = found.pairs
    for _, endpoint in pairs:
        ipcache[endpoint.ip] = endpoint.identity
    local_eps = [ep for pod, ep in pairs if pod.spec.node_name == node_name]
    if view.policies:
        policy_pods = [ep for _, ep in pairs]
    else:  # without policies only the pods at local addresses matter (the same plan)
        local_ips = {e.ip for e in local_eps}
        policy_pods = [ep for _, ep in pairs if ep.ip in local_ips]
    namespace_labels = {ns.metadata.name: ns.metadata.labels for ns in view.namespaces}
    plan = compile_policy(
        view.policies,
        policy_pods,
        namespace_labels,
        [e.ip for e in local_eps],
    )
    endpoints = {}
    authz = compile_authz(view.authorization_policies, [ep for _, ep in pairs],
                          [e.ip for e in local_eps], trust_domain)
    # Pods whose every policy the kernel judges take ingress from pods (judged on their
    # nodes); the others only through the waypoint.
    judged = {ep.ip for _, ep in pairs if ep.identity in authz.enforced}
    guarded = waypoint_only(view.authorization_policies, pairs, node_name) - judged
    for ep in local_eps:
        policy = plan.endpoints.get(ep.ip)
        flags = EP_F_MTLS if enrolled(namespace_labels.get(ep.namespace, {})) else 0
        if policy is not None:
            flags |= EP_F_INGRESS_ENFORCED if policy.ingress_enforced else 0
            flags |= EP_F_EGRESS_ENFORCED if policy.egress_enforced else 0
        if ep.ip in guarded:
            flags |= EP_F_INGRESS_ENFORCED
        if ep.ip in judged:
            flags |= EP_F_AUTHZ_KERNEL
        endpoints[ep.ip] = LocalEndpoint(ep.namespace, ep.name, ep.ip, ep.identity, flags)
    identity_rules, cidr_rules = plan.identity_rules, plan.cidr_rules
    if guarded:
        identity_rules = {k: v for k, v in identity_rules.items()
                          if not (k[0] in guarded and k[2] is Direction.INGRESS)}
        cidr_rules = {k: v for k, v in cidr_rules.items()
                      if not (k[0] in guarded and k[1] is Direction.INGRESS)}
    return EndpointsPart(
        endpoints=endpoints,
        ipcache=ipcache,
        identity_rules=identity_rules,
        cidr_rules=cidr_rules,
        local=tuple(local_eps),
        errors=tuple(waypoint_errors) + found.collisions + tuple(plan.errors)
        + authz.errors,
        pods=tuple(pairs),
        authz=kernel_entries(authz) if authz.verdicts else {},
    )


def waypoint_only(
    policies: Iterable[AuthorizationPolicy], pairs: Iterable[tuple[Pod, PodEndpoint]],
    node_name: str,
) -> frozenset[IPv4]:
    """This node's pods an AuthorizationPolicy selects: the waypoint is their only way in,
    unless the kernel judges all their policies (``plan_endpoints`` takes those out:
    ``authz_l4``). Otherwise the kernel lets in only the node and the
    waypoints (which judged it) and drops every other ingress (DROP_POLICY_DENIED): a direct
    connection to the pod's address fails closed instead of bypassing the policy. Their
    NetworkPolicy ingress rules leave the kernel's maps; the waypoint applies them."""
    policies = tuple(policies)
    if not policies:
        return frozenset()
    return frozenset(
        ep.ip
        for pod, ep in pairs
        if pod.spec.node_name == node_name
        and any(selects_pod(p, pod.metadata.namespace, pod.metadata.labels) for p in policies)
    )
