"""Desired datapath state for one node, computed from the cluster view (pure).

The one translation from Kubernetes objects to what the maps should hold: local endpoints
with identities and enforcement flags, the cluster-wide ipcache, policy rules and services.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.datapath.authz_l4 import AuthzEntry, AuthzKey, compile_authz, kernel_entries
from agent.datapath.external import node_site
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
from agent.datapath.mtls_plan import MtlsEntry, MtlsKey, plan_mtls
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
from agent.datapath.services import ServiceKey, ServicePlan, plan_services
from agent.model.authz import AuthorizationPolicy
from agent.model.core import EndpointSlice, Namespace, Pod, Secret, Service
from agent.model.gateway import Gateway, GatewayClass, ReferenceGrant
from agent.model.httproute import HTTPRoute
from agent.model.meta import Protocol
from agent.model.networking import NetworkPolicy
from agent.model.node import Node
from agent.model.peerauth import PeerAuthentication
from agent.model.resource import Resource
from authz.applies import selects_pod
from authz.steer import steered_services
from identity.peerauth import enrolled
from identity.spiffe import DEFAULT_TRUST_DOMAIN

if TYPE_CHECKING:  # imported by l7_keys: a cluster without routes never compiles any
    from gatewayapi import RouteCompiler

IPv4 = ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    namespace: str
    name: str
    ip: IPv4
    identity: int
    flags: int


@dataclass(frozen=True)
class ClusterView:
    """Typed objects the datapath cares about (already converted from the store)."""

    nodes: tuple[Node, ...] = ()
    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    gateway_classes: tuple[GatewayClass, ...] = ()
    grants: tuple[ReferenceGrant, ...] = ()
    secrets: tuple[Secret, ...] = ()
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()


@dataclass(frozen=True)
class DesiredDatapath:
    endpoints: Mapping[IPv4, LocalEndpoint] = field(default_factory=dict)
    ipcache: Mapping[IPv4, int] = field(default_factory=dict)
    identity_rules: Mapping[IdentityKey, tuple[PortRule, ...]] = field(default_factory=dict)
    cidr_rules: Mapping[CidrKey, CidrRule] = field(default_factory=dict)
    services: ServicePlan = field(default_factory=ServicePlan)
    l7: frozenset[ServiceKey] = frozenset()  # service ports and Gateway listeners -> waypoint
    l7_some: frozenset[ServiceKey] = frozenset()  # ports only some clients reach via waypoint
    l7_clients: frozenset[tuple[ServiceKey, IPv4]] = frozenset()  # ... and those clients
    waypoint: tuple[IPv4, int] | None = None  # this node's waypoint
    mtls: Mapping[MtlsKey, MtlsEntry] = field(default_factory=dict)  # enrolled pods (mtls_plan)
    authz: Mapping[AuthzKey, tuple[AuthzEntry, ...]] = field(default_factory=dict)  # authz_l4
    errors: tuple[str, ...] = ()


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
class L7Needs:
    """``every``: Service ports and Gateway listeners whose every client goes to the
    waypoint. ``consumers``: Service ports with only consumer routes, and the namespaces
    whose pods go to the waypoint for them (the rest stay plain L4)."""

    every: frozenset[ServiceKey] = frozenset()
    consumers: Mapping[ServiceKey, frozenset[str]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def l7_keys(view: ClusterView, compiler: RouteCompiler) -> L7Needs:
    """What must reach a waypoint: Service ports with HTTPRoutes (GAMMA; consumer routes
    only for clients in their namespace), the TCP ports of Services under an
    AuthorizationPolicy (``authz.steer``: the waypoint enforces it), and every listener of
    Gateways with an address."""
    from gatewayapi import RoutingInputs

    tables = compiler.compile(
        RoutingInputs.of(
            view.routes,
            view.gateways,
            view.gateway_classes,
            view.services,
            view.grants,
            view.namespaces,
            view.secrets,
        )
    )
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in view.services}
    keys = set()
    consumers: dict[ServiceKey, frozenset[str]] = {}
    for parent in tables.l7_services():
        svc = by_name.get((parent.namespace, parent.name))
        vip = _ipv4_or_none(svc.spec.cluster_ip) if svc is not None else None
        if vip is not None:  # an IPv6 ClusterIP is not load-balanced (plan_services notes it)
            key = ServiceKey(vip, parent.port, 6)
            namespaces = tables.l7_client_namespaces(parent)
            if namespaces is None:
                keys.add(key)
            elif namespaces:
                consumers[key] = namespaces
    for namespace, name in steered_services(view.authorization_policies, view.services):
        svc = by_name[(namespace, name)]
        vip = _ipv4_or_none(svc.spec.cluster_ip)
        if vip is not None:
            keys.update(
                ServiceKey(vip, p.port, 6) for p in svc.spec.ports if p.protocol is Protocol.TCP
            )
    usable, errors = gateway_addresses(view.gateways, view.services)
    for gw, address in usable:
        for listener in gw.spec.listeners:
            keys.add(ServiceKey(address, listener.port, 6))
    return L7Needs(
        frozenset(keys), {k: v for k, v in consumers.items() if k not in keys}, tuple(errors)
    )


def _ipv4_or_none(text: str | None) -> IPv4 | None:
    try:
        return IPv4(text) if text not in (None, "", "None") else None
    except ValueError:
        return None


def gateway_addresses(
    gateways: Iterable[Gateway], services: Iterable[Service]
) -> tuple[list[tuple[Gateway, IPv4]], list[str]]:
    """Each Gateway's addresses that are its alone. An address that is also a Service's
    ClusterIP stays the Service's: a Gateway (perhaps another namespace's) that shared it
    would capture the Service's connections for its own routes."""
    cluster_ips = {
        s.spec.cluster_ip: s.metadata.key
        for s in services
        if s.spec.cluster_ip not in (None, "", "None")
    }
    usable, errors = [], []
    for gw in sorted(gateways, key=lambda g: g.metadata.key):  # errors in one order
        for address in gw.status.addresses:
            holder = cluster_ips.get(address.value)
            if holder is not None:
                errors.append(
                    f"Gateway {gw.metadata.key}: address {address.value} is the ClusterIP of "
                    f"Service {holder}: not programmed (the Service keeps it)"
                )
                continue
            try:
                usable.append((gw, IPv4(address.value)))
            except ValueError:
                continue
    return usable, errors



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


def mtls_part(part: EndpointsPart, view: ClusterView) -> dict[MtlsKey, MtlsEntry]:
    """mtls_v1's plan: reads ``part``'s pods and ``view``'s namespaces and
    PeerAuthentications."""
    labels = {ns.metadata.name: ns.metadata.labels for ns in view.namespaces}
    return plan_mtls(part.pods, labels, view.peer_authentications)


def assemble(
    part: EndpointsPart,
    services: ServicePlan,
    needs: L7Needs,
    waypoint: tuple[IPv4, int] | None,
    mtls: Mapping[MtlsKey, MtlsEntry] | None = None,
) -> DesiredDatapath:
    """The desired state from its parts (each computed alone: see agent.datapath.planner)."""
    l7_clients = frozenset(
        (key, ep.ip)
        for key, namespaces in needs.consumers.items()
        for ep in part.local
        if ep.namespace in namespaces
    )
    return DesiredDatapath(
        endpoints=part.endpoints,
        ipcache=part.ipcache,
        identity_rules=part.identity_rules,
        cidr_rules=part.cidr_rules,
        services=services,
        l7=needs.every,
        l7_some=frozenset(needs.consumers),
        l7_clients=l7_clients,
        waypoint=waypoint,
        mtls=mtls if mtls is not None else {},
        authz=part.authz,
        errors=part.errors + tuple(services.errors) + needs.errors,
    )


def desired_datapath(
    view: ClusterView,
    node_name: str,
    previous_services: ServicePlan | None = None,
    l7: L7Needs | None = None,
    waypoint: tuple[IPv4, int] | None = None,
) -> DesiredDatapath:
    """The whole desired state, planned from scratch: the reference that the incremental
    planner (agent.datapath.planner) must always equal.

    ``waypoint``: where this node's waypoint listens, from the agent's own configuration
    (None: no waypoint, L7 services act as L4). Other nodes' waypoints follow
    ``waypoint_address``; every waypoint address gets the waypoint identity."""
    part = plan_endpoints(view, node_name, waypoint)
    return assemble(
        part,
        plan_services(
            view.services, view.slices, previous=previous_services,
            site=node_site(view.nodes, node_name),
        ),
        l7 or L7Needs(),
        waypoint,
        mtls_part(part, view),
    )


def view_of(resources: Iterable[Resource]) -> ClusterView:
    """Group decoded objects by kind."""
    buckets: dict[str, list[Any]] = {}
    for res in resources:
        buckets.setdefault(res.kind, []).append(res)
    return ClusterView(
        nodes=tuple(buckets.get("Node", ())),
        namespaces=tuple(buckets.get("Namespace", ())),
        pods=tuple(buckets.get("Pod", ())),
        services=tuple(buckets.get("Service", ())),
        slices=tuple(buckets.get("EndpointSlice", ())),
        policies=tuple(buckets.get("NetworkPolicy", ())),
        routes=tuple(buckets.get("HTTPRoute", ())),
        gateways=tuple(buckets.get("Gateway", ())),
        gateway_classes=tuple(buckets.get("GatewayClass", ())),
        grants=tuple(buckets.get("ReferenceGrant", ())),
        secrets=tuple(buckets.get("Secret", ())),
        peer_authentications=tuple(buckets.get("PeerAuthentication", ())),
        authorization_policies=tuple(buckets.get("AuthorizationPolicy", ())),
    )
