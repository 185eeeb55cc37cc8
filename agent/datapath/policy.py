"""NetworkPolicy compiler: Kubernetes NetworkPolicies -> per-endpoint policy map entries.

Pure: ``compile_policy`` takes the policies, every pod of the cluster (with its identity),
the namespaces' labels and this node's endpoint addresses, and returns a ``PolicyPlan``
(``policy_plan``: the map entries, and ``evaluate``, the Python mirror of the C decision)
that the datapath reconciler writes into the policy maps. The plan types are re-exported
here, so ``agent.datapath.policy`` is the one import callers need.

A direction of an endpoint is enforced once any policy with that policyType selects it.

Compilation (Kubernetes semantics; the allowed set is the union over selecting policies):

- A rule without peers allows every peer (``WILDCARD``); without ports, everything
  (``ANY_PORT``). A rule whose peers all fail to compile allows nothing.
- podSelector / namespaceSelector peers become the identities of the matching pods.
  Namespaces carry ``kubernetes.io/metadata.name`` as Kubernetes sets it. Selectors on
  labels that identities leave out (``identity.EXCLUDED_LABEL_KEYS``) are reported: they
  select by identity, so they cannot tell apart pods that differ only in those labels.
- ipBlock peers become LPM entries (see ``policy_cidr``). IPv4 only: IPv6 blocks are
  reported and ignored.
- Named ports resolve on the pod that owns the port: the local endpoint for ingress; for
  egress each peer pod, so pod peers get per-identity entries, a wildcard peer gets entries
  for every pod declaring the name, and an ipBlock peer gets a /32 entry for every such pod
  inside the block. Pods sharing an identity share the union of what their names resolve to.
- More than ``MAX_PORT_RULES`` rules for one key fails closed: the first ones (sorted) are
  kept and an error names the endpoint, key and policies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network, ip_network

from agent.datapath.identity import (
    EXCLUDED_LABEL_KEYS,
    MAX_POD_IDENTITY,
    MIN_POD_IDENTITY,
    WILDCARD,
)
from agent.datapath.policy_cidr import CidrGrant, CidrRule, grants_of, merge_grants
from agent.datapath.policy_names import REGISTRY, Grant, PolicyNames
from agent.datapath.policy_plan import (
    MAX_PORT_RULES,
    CidrKey,
    Direction,
    EndpointPolicy,
    IdentityKey,
    PodEndpoint,
    PolicyPlan,
    decide,
    endpoint_from_pod,
    evaluate,
    lookup_cidr,
)
from agent.datapath.policy_ports import (
    ANY_PORT,
    PortRule,
    fixed_port_rules,
    format_rules,
    has_named_ports,
    named_port_rules,
    normalise,
)
from agent.model.meta import LabelSelector
from agent.model.networking import NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort

__all__ = [
    "MAX_PORT_RULES",
    "NAMESPACE_NAME_LABEL",
    "CidrRule",
    "Direction",
    "EndpointPolicy",
    "PodEndpoint",
    "PolicyPlan",
    "PortRule",
    "compile_policy",
    "decide",
    "endpoint_from_pod",
    "evaluate",
    "lookup_cidr",
]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Kubernetes labels every namespace with its name; selectors on it work without the label
being in ``namespace_labels``."""

_Rule = tuple[tuple[NetworkPolicyPeer, ...], tuple[NetworkPolicyPort, ...]]


@dataclass(frozen=True)
class _Peers:
    """A rule's peers after selection: every peer, some pods, and/or some ipBlocks."""

    wildcard: bool
    pods: tuple[PodEndpoint, ...]
    blocks: tuple[tuple[IPv4Network, tuple[IPv4Network, ...]], ...]


class _Compiler:
    def __init__(
        self,
        pods: Sequence[PodEndpoint],
        namespace_labels: Mapping[str, Mapping[str, str]],
        local_ips: Collection[IPv4Address],
        names: PolicyNames,
    ) -> None:
        self.names = names
        self.errors: list[str] = []
        self.pods = self._valid_pods(pods)
        self.namespace_labels = namespace_labels
        self.local = self._local_endpoints(local_ips)
        self.enforced: dict[IPv4Address, set[Direction]] = defaultdict(set)
        # key -> policy -> the rule tuples it granted (appended per peer pod: the same tuple
        # object many times, deduplicated by identity in `_grants`, never hashed per call)
        self.identity_grants: dict[IdentityKey, dict[str, list[Sequence[PortRule]]]] = (
            defaultdict(dict)
        )
        # (endpoint, direction) -> policies with ipBlock grants there

        self.grants: dict[tuple[IPv4Address, Direction], list[CidrGrant]] = defaultdict(list)
        self.sources: dict[object, set[str]] = defaultdict(set)

    def _valid_pods(self, pods: Sequence[PodEndpoint]) -> tuple[PodEndpoint, ...]:
        valid = []
        for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
            if MIN_POD_IDENTITY <= pod.identity < MAX_POD_IDENTITY:
                valid.append(pod)
            else:
                self.errors.append(
                    f"Pod {pod.key}: identity {pod.identity} is outside the pod range "
                    f"[{MIN_POD_IDENTITY}, {MAX_POD_IDENTITY}); the pod is left out of policy"
                )
        return tuple(valid)

    def _local_endpoints(self, local_ips: Collection[IPv4Address]) -> tuple[PodEndpoint, ...]:
        wanted = set(local_ips)
        local: dict[IPv4Address, PodEndpoint] = {}
        for pod in self.pods:
            if pod.ip not in wanted:
                continue
            if pod.ip in local:
                self.errors.append(
                    f"Pod {pod.key}: address {pod.ip} is also {local[pod.ip].key}'s; "
                    f"policy follows {local[pod.ip].key}"
                )
                continue
            local[pod.ip] = pod
        return tuple(sorted(local.values(), key=lambda p: p.ip))

    # --- one policy --------------------------------------------------------------------

    def add_policy(self, policy: NetworkPolicy) -> None:
        spec = policy.spec
        namespace = policy.metadata.namespace
        selected = [
            e
            for e in self.local
            if e.namespace == namespace and spec.pod_selector.matches(e.labels)
        ]
        sides: list[tuple[Direction, str, str, list[_Rule]]] = []
        if spec.affects_ingress:
            sides.append(
                (Direction.INGRESS, "ingress", "from", [(r.from_, r.ports) for r in spec.ingress])
            )
        if spec.affects_egress:
            sides.append((Direction.EGRESS, "egress", "to", [(r.to, r.ports) for r in spec.egress]))
        for direction, field, peer_field, rules in sides:
            for endpoint in selected:
                self.enforced[endpoint.ip].add(direction)
            for i, (peers, ports) in enumerate(rules):
                where = f"spec.{field}[{i}].{peer_field}"
                resolved = self._select_peers(policy, where, peers)
                for endpoint in selected:
                    self._grant(policy.metadata.key, endpoint, direction, resolved, ports)

    def _select_peers(
        self, policy: NetworkPolicy, where: str, peers: Sequence[NetworkPolicyPeer]
    ) -> _Peers:
        if not peers:
            return _Peers(wildcard=True, pods=(), blocks=())
        pods: dict[str, PodEndpoint] = {}
        blocks = []
        for j, peer in enumerate(peers):
            if peer.ip_block is not None:
                network = ip_network(peer.ip_block.cidr, strict=False)
                if not isinstance(network, IPv4Network):
                    self._error(
                        policy,
                        f"{where}[{j}].ipBlock.cidr",
                        "IPv6 is not supported by the IPv4 datapath; this peer allows nothing",
                    )
                    continue
                excepts = tuple(IPv4Network(text, strict=False) for text in peer.ip_block.except_)
                blocks.append((network, excepts))
                continue
            self._check_selector(policy, f"{where}[{j}].podSelector", peer.pod_selector)
            for pod in self.pods:
                if self._peer_selects(policy, peer, pod):
                    pods.setdefault(pod.key, pod)
        return _Peers(wildcard=False, pods=tuple(pods.values()), blocks=tuple(blocks))

    def _peer_selects(
        self, policy: NetworkPolicy, peer: NetworkPolicyPeer, pod: PodEndpoint
    ) -> bool:
        if peer.namespace_selector is None:
            in_namespace = pod.namespace == policy.metadata.namespace
        else:
            in_namespace = peer.namespace_selector.matches(self._namespace_labels(pod.namespace))
        return in_namespace and (peer.pod_selector is None or peer.pod_selector.matches(pod.labels))

    def _namespace_labels(self, namespace: str) -> Mapping[str, str]:
        labels = dict(self.namespace_labels.get(namespace, {}))
        labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
        return labels

    def _check_selector(
        self, policy: NetworkPolicy, where: str, selector: LabelSelector | None
    ) -> None:
        if selector is None:
            return
        keys = set(selector.match_labels) | {req.key for req in selector.match_expressions}
        for key in sorted(keys & EXCLUDED_LABEL_KEYS):
            self._error(
                policy,
                where,
                f"label {key!r} is not part of pod identities; the rule "
                "also applies to pods that differ from the selected ones only in it",
            )

    def _grant(
        self,
        source: str,
        endpoint: PodEndpoint,
        direction: Direction,
        peers: _Peers,
        ports: Sequence[NetworkPolicyPort],
    ) -> None:
        fixed = fixed_port_rules(ports) if ports else (ANY_PORT,)
        named = has_named_ports(ports)
        if direction == Direction.INGRESS:
            # Named ports are the local endpoint's own; they resolve once for every peer.
            own = fixed + (named_port_rules(ports, endpoint.named_ports) if named else ())
            if peers.wildcard:
                self._allow(source, (endpoint.ip, WILDCARD, direction), own)
            for pod in peers.pods:
                self._allow(source, (endpoint.ip, pod.identity, direction), own)
            for network, excepts in peers.blocks:
                grant = CidrGrant(network, excepts, own, source)
                self._allow_block(source, endpoint, direction, grant)
            return
        # Egress: named ports are the peer's, so they resolve per peer pod.
        if peers.wildcard:
            self._allow(source, (endpoint.ip, WILDCARD, direction), fixed)
            if named:
                for pod in self.pods:
                    rules = named_port_rules(ports, pod.named_ports)
                    self._allow(source, (endpoint.ip, pod.identity, direction), rules)
        for pod in peers.pods:
            rules = fixed + (named_port_rules(ports, pod.named_ports) if named else ())
            self._allow(source, (endpoint.ip, pod.identity, direction), rules)
        for network, excepts in peers.blocks:
            block = CidrGrant(network, excepts, fixed, source)
            self._allow_block(source, endpoint, direction, block)
            if not named:
                continue
            for pod in self.pods:
                rules = named_port_rules(ports, pod.named_ports)
                if rules and block.allows(pod.ip):
                    grant = CidrGrant(IPv4Network(pod.ip), (), rules, source)
                    self._allow_block(source, endpoint, direction, grant)

    def _allow(self, source: str, key: IdentityKey, rules: Sequence[PortRule]) -> None:
        if rules:
            self.identity_grants[key].setdefault(source, []).append(rules)

    def _allow_block(
        self, source: str, endpoint: PodEndpoint, direction: Direction, grant: CidrGrant
    ) -> None:
        if grant.ports:
            self.grants[(endpoint.ip, direction)].append(grant)
            self.sources[(endpoint.ip, direction)].add(source)

    def _error(self, policy: NetworkPolicy, where: str, message: str) -> None:
        self.errors.append(f"NetworkPolicy {policy.metadata.key}: {where}: {message}")

    # --- the plan ----------------------------------------------------------------------

    def plan(self) -> PolicyPlan:
        endpoints = {
            e.ip: EndpointPolicy(
                ip=e.ip,
                identity=e.identity,
                ingress_enforced=Direction.INGRESS in self.enforced[e.ip],
                egress_enforced=Direction.EGRESS in self.enforced[e.ip],
            )
            for e in self.local
        }
        by_ip = {e.ip: e for e in self.local}
        identity_rules: dict[IdentityKey, tuple[PortRule, ...]] = {}
        for key in sorted(self.identity_grants):
            ip, peer, direction = key
            what = f"{direction.name.lower()} rules for peer identity {peer}"
            granted = _grants(self.identity_grants[key])
            policies = self.identity_grants[key].keys()
            kept = self._fit(by_ip[ip], what, normalise(r for _, r in granted), policies)
            identity_rules[key] = self._named(kept, granted)
        cidr_rules: dict[CidrKey, CidrRule] = {}
        for (ip, direction), grants in sorted(self.grants.items()):
            for network, ports in merge_grants(grants).items():
                what = f"{direction.name.lower()} rules for {network}"
                kept = self._fit(by_ip[ip], what, ports, self.sources[(ip, direction)])
                kept = self._named(kept, grants_of(grants, network))
                cidr_rules[(ip, direction, network)] = CidrRule(deny=not kept, ports=kept)
        return PolicyPlan(endpoints, identity_rules, cidr_rules, tuple(self.errors))

    def _named(
        self, rules: tuple[PortRule, ...], grants: Iterable[Grant]
    ) -> tuple[PortRule, ...]:
        """``rules`` stamped with the id of the policies they came from (policy_names)."""
        pid = self.names.learn(grants) if rules else 0
        return tuple(replace(rule, policy=pid) for rule in rules)

    def _fit(
        self, endpoint: PodEndpoint, what: str, rules: tuple[PortRule, ...],
        policies: Iterable[str],
    ) -> tuple[PortRule, ...]:
        if len(rules) <= MAX_PORT_RULES:
            return rules
        kept, dropped = rules[:MAX_PORT_RULES], rules[MAX_PORT_RULES:]
        names = ", ".join(sorted(policies))
        self.errors.append(
            f"Pod {endpoint.key} ({endpoint.ip}): {what} need {len(rules)} port rules, more "
            f"than the limit of {MAX_PORT_RULES}; denied {format_rules(dropped)} "
            f"(from NetworkPolicy {names})"
        )
        return kept


def _grants(by_policy: Mapping[str, list[Sequence[PortRule]]]) -> list[Grant]:
    return [
        (source, rule)
        for source, granted in by_policy.items()
        for rules in {id(r): r for r in granted}.values()
        for rule in rules
    ]


def compile_policy(
    policies: Sequence[NetworkPolicy],
    pods: Sequence[PodEndpoint],
    namespace_labels: Mapping[str, Mapping[str, str]],
    local_ips: Collection[IPv4Address],
    names: PolicyNames = REGISTRY,
) -> PolicyPlan:
    """The policy map entries of the endpoints at ``local_ips``.

    ``pods`` is every pod of the cluster (peers are selected among them), each with its
    identity; ``namespace_labels`` maps namespace names to their labels. Each value's rules
    carry the id of the policies they came from, learnt by ``names`` (the agent's registry:
    the one piece of state, a bounded cache, so the flow decoder can name them).
    """
    compiler = _Compiler(pods, namespace_labels, local_ips, names)
    for policy in sorted(policies, key=lambda p: p.metadata.key):
        compiler.add_policy(policy)
    return compiler.plan()
