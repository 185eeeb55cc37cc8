"""Property: the compiled plan, read the way the datapath reads it (identity lookups plus a
longest-prefix match), decides exactly what Kubernetes NetworkPolicy semantics decide.

The oracle below evaluates the policies directly from their definition and shares no code
with the compiler. Pods that share an identity share their labels and named ports here, as
identity-based enforcement needs them to (see ``agent.datapath.identity``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath.identity import WORLD
from agent.datapath.policy import Direction, PodEndpoint, compile_policy, evaluate
from agent.datapath.policy_cidr import CidrGrant, CidrRule, longest_prefix_match, merge_grants
from agent.datapath.policy_ports import PortRule, ports_match
from agent.model.networking import NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, PolicyType
from tests.unit.datapath.policy_cluster import endpoints, netpol, pod_doc

SPACE = IPv4Network("10.0.0.0/24")
NAMESPACE_LABELS = {"a": {"team": "red"}, "b": {"team": "blue"}}
APP_PORTS: dict[str, list[dict[str, Any]]] = {
    "x": [{"name": "http", "containerPort": 60}],
    "y": [
        {"name": "http", "containerPort": 61},
        {"name": "dns", "containerPort": 53, "protocol": "UDP"},
    ],
    "z": [],
}
PODS = endpoints(
    [
        pod_doc(ns, f"{app}-{i}", f"10.0.0.{10 + 3 * i + j}", {"app": app}, APP_PORTS[app])
        for i, ns in enumerate(("a", "b"))
        for j, app in enumerate(("x", "y", "z"))
    ]
)
POD_BY_IP = {pod.ip: pod for pod in PODS}
LOCAL = [pod for pod in PODS if pod.namespace == "a"]
PROTOCOLS = {"TCP": 6, "UDP": 17, "SCTP": 132}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by Kubernetes

# --- strategies: Kubernetes-shaped policies over this cluster -------------------------------

apps = st.sampled_from(["x", "y", "z"])
pod_selectors: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}),
    apps.map(lambda app: {"matchLabels": {"app": app}}),
    st.lists(apps, min_size=1, max_size=2).map(
        lambda values: {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": values}]}
    ),
)
namespace_selectors: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}),
    st.sampled_from(["red", "blue"]).map(lambda team: {"matchLabels": {"team": team}}),
    st.sampled_from(["a", "b"]).map(lambda ns: {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}),
)


@st.composite
def networks(draw: st.DrawFn, inside: IPv4Network = SPACE, strict: bool = False) -> IPv4Network:
    shortest = inside.prefixlen + (1 if strict else 0)
    length = draw(st.integers(shortest, 32) | st.integers(shortest, min(shortest + 4, 32)))
    offset = draw(st.integers(0, inside.num_addresses - 1))
    return IPv4Network((int(inside.network_address) + offset, length), strict=False)


@st.composite
def ip_blocks(draw: st.DrawFn) -> dict[str, Any]:
    cidr = draw(networks(SPACE.supernet(new_prefix=22)))  # sometimes wider than SPACE
    if cidr.prefixlen == 32:
        return {"cidr": str(cidr)}
    excepts = draw(st.lists(networks(cidr, strict=True), max_size=2))
    return {"cidr": str(cidr), "except": [str(e) for e in excepts]}


peers = st.one_of(
    ip_blocks().map(lambda block: {"ipBlock": block}),
    ip_blocks().map(lambda block: {"ipBlock": block}),
    pod_selectors.map(lambda sel: {"podSelector": sel}),
    namespace_selectors.map(lambda sel: {"namespaceSelector": sel}),
    st.tuples(pod_selectors, namespace_selectors).map(
        lambda pair: {"podSelector": pair[0], "namespaceSelector": pair[1]}
    ),
)


NAMES = [("TCP", "http"), ("TCP", "http"), ("UDP", "dns"), ("UDP", "http"), ("TCP", "nope")]


@st.composite
def ports(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["all", "one", "range", "named", "named"]))
    if kind == "named":  # mostly names some pods declare, with their protocol
        protocol, name = draw(st.sampled_from(NAMES))
        return {"protocol": protocol, "port": name}
    port: dict[str, Any] = {"protocol": draw(st.sampled_from(["TCP", "UDP"]))}
    if kind in ("one", "range"):
        port["port"] = draw(st.integers(50, 64))
    if kind == "range":
        port["endPort"] = port["port"] + draw(st.integers(0, 4))
    return port


def rules(peer: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    # Hypothesis favours empty lists; "[] or 1-2 items" keeps peers and ports common.
    return st.fixed_dictionaries(
        {
            "peers": st.lists(peer, min_size=1, max_size=2) | st.just([]),
            "ports": st.lists(ports(), min_size=1, max_size=2) | st.just([]),
        }
    )


@st.composite
def policies(
    draw: st.DrawFn, index: int, peer: st.SearchStrategy[dict[str, Any]] = peers
) -> NetworkPolicy:
    spec: dict[str, Any] = {"podSelector": draw(pod_selectors)}
    types = draw(st.sampled_from([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if types is not None:
        spec["policyTypes"] = types
    for side, peer_key in (("ingress", "from"), ("egress", "to")):
        drawn: list[dict[str, Any]] = draw(
            st.lists(rules(peer), min_size=1, max_size=2) | st.just([])
        )
        spec[side] = [
            {peer_key if k == "peers" else k: v for k, v in rule.items()} for rule in drawn
        ]
    namespace = draw(st.sampled_from(["a", "a", "b"]))
    return netpol(spec, name=f"p{index}", namespace=namespace)


def policy_lists(
    peer: st.SearchStrategy[dict[str, Any]] = peers,
) -> st.SearchStrategy[tuple[NetworkPolicy, ...]]:
    return st.integers(1, 2).flatmap(lambda n: st.tuples(*(policies(i, peer) for i in range(n))))


@dataclass(frozen=True)
class Query:
    endpoint: PodEndpoint
    direction: Direction
    peer: IPv4Address
    protocol: int
    port: int


def rules_of(
    policy: NetworkPolicy,
) -> list[tuple[tuple[NetworkPolicyPeer, ...], tuple[NetworkPolicyPort, ...]]]:
    return [(r.from_, r.ports) for r in policy.spec.ingress] + [
        (r.to, r.ports) for r in policy.spec.egress
    ]


def addresses_of_interest(policies: tuple[NetworkPolicy, ...]) -> list[IPv4Address]:
    """Pod addresses, and the first and last address of every ipBlock cidr and except and
    their neighbours outside: where an off-by-one in the LPM table would show."""
    found = {pod.ip for pod in PODS}
    for policy in policies:
        for peer in (peer for peer_list, _ in rules_of(policy) for peer in peer_list):
            if peer.ip_block is None:
                continue
            for text in (peer.ip_block.cidr, *peer.ip_block.except_):
                network = IPv4Network(text, strict=False)
                first, last = network.network_address, network.broadcast_address
                found |= {first, last, first - 1, last + 1}
    return sorted(found)


def ports_of_interest(policies: tuple[NetworkPolicy, ...]) -> list[int]:
    """The named ports' numbers, and every numeric port or range end and its neighbours."""
    found = {53, 60, 61}
    for policy in policies:
        for port in (port for _, port_list in rules_of(policy) for port in port_list):
            if isinstance(port.port, int):
                last = port.end_port or port.port
                found |= {port.port - 1, port.port, last, last + 1}
    return sorted(found)


# --- the oracle: NetworkPolicy semantics, evaluated directly --------------------------------


def selects_peer(policy: NetworkPolicy, peer: NetworkPolicyPeer, q: Query) -> bool:
    if peer.ip_block is not None:
        block = peer.ip_block
        return q.peer in IPv4Network(block.cidr, strict=False) and not any(
            q.peer in IPv4Network(e, strict=False) for e in block.except_
        )
    pod = POD_BY_IP.get(q.peer)
    if pod is None:
        return False
    if peer.namespace_selector is None:
        namespace_ok = pod.namespace == policy.metadata.namespace
    else:
        labels = {**NAMESPACE_LABELS[pod.namespace], NAMESPACE_NAME_LABEL: pod.namespace}
        namespace_ok = peer.namespace_selector.matches(labels)
    return namespace_ok and (peer.pod_selector is None or peer.pod_selector.matches(pod.labels))


def allows_port(port: NetworkPolicyPort, q: Query) -> bool:
    if PROTOCOLS[port.protocol] != q.protocol:
        return False
    if port.port is None:
        return True
    if isinstance(port.port, int):
        return port.port <= q.port <= (port.end_port or port.port)
    owner = q.endpoint if q.direction == Direction.INGRESS else POD_BY_IP.get(q.peer)
    return owner is not None and owner.named_ports.get((port.port, q.protocol)) == q.port


def oracle(policies: tuple[NetworkPolicy, ...], q: Query) -> bool:
    kind = PolicyType.INGRESS if q.direction == Direction.INGRESS else PolicyType.EGRESS
    selecting = [
        p
        for p in policies
        if p.metadata.namespace == q.endpoint.namespace
        and p.spec.pod_selector.matches(q.endpoint.labels)
        and kind in p.spec.policy_types
    ]
    if not selecting:
        return True
    for policy in selecting:
        if kind == PolicyType.INGRESS:
            side = [(rule.from_, rule.ports) for rule in policy.spec.ingress]
        else:
            side = [(rule.to, rule.ports) for rule in policy.spec.egress]
        for peer_list, port_list in side:
            if (not peer_list or any(selects_peer(policy, p, q) for p in peer_list)) and (
                not port_list or any(allows_port(port, q) for port in port_list)
            ):
                return True
    return False


def check_plan(policies: tuple[NetworkPolicy, ...]) -> None:
    """Every verdict of the compiled plan, on the addresses and ports where rules change,
    equals the oracle's."""
    plan = compile_policy(policies, PODS, NAMESPACE_LABELS, {pod.ip for pod in LOCAL})
    assert plan.errors == ()
    addresses = addresses_of_interest(policies)
    port_numbers = ports_of_interest(policies)
    for endpoint, direction in itertools.product(LOCAL, Direction):
        for peer_ip, protocol, port in itertools.product(addresses, (6, 17), port_numbers):
            q = Query(endpoint, direction, peer_ip, protocol, port)
            peer = POD_BY_IP.get(peer_ip)
            identity = peer.identity if peer is not None else WORLD
            got = evaluate(plan, endpoint.ip, direction, peer_ip, identity, protocol, port)
            assert got == oracle(policies, q), q


@settings(max_examples=200, deadline=None)
@given(policy_lists())
def test_plan_decides_like_kubernetes(policies: tuple[NetworkPolicy, ...]) -> None:
    check_plan(policies)


@settings(max_examples=100, deadline=None)
@given(policy_lists(ip_blocks().map(lambda block: {"ipBlock": block})))
def test_ip_block_plans_decide_like_kubernetes(policies: tuple[NetworkPolicy, ...]) -> None:
    # Only ipBlock peers: overlapping blocks, excepts, and named ports through blocks.
    check_plan(policies)


# --- the LPM table alone, checked on every address -------------------------------------------

grant_ports = st.lists(
    st.builds(
        lambda proto, first, width: PortRule(proto, first, first + width),
        st.sampled_from([0, 6, 17]),
        st.integers(0, 10),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def grants(draw: st.DrawFn) -> CidrGrant:
    network = draw(networks(IPv4Network("10.0.0.0/26")))
    excepts = (
        ()
        if network.prefixlen == 32
        else draw(st.lists(networks(network, strict=True), max_size=3))
    )
    return CidrGrant(network, tuple(excepts), tuple(draw(grant_ports)))


@settings(max_examples=300, deadline=None)
@given(st.lists(grants(), max_size=5))
def test_longest_prefix_match_equals_the_union_of_grants(drawn: list[CidrGrant]) -> None:
    table = {
        network: CidrRule(deny=not ports, ports=ports)
        for network, ports in merge_grants(drawn).items()
    }
    for address in IPv4Network("10.0.0.0/26"):
        match = longest_prefix_match(table, address)
        for proto in (6, 17):
            for port in range(0, 15):
                expected = any(
                    g.allows(address) and ports_match(g.ports, proto, port) for g in drawn
                )
                got = (
                    match is not None
                    and not match[1].deny
                    and ports_match(match[1].ports, proto, port)
                )
                assert got == expected, (address, proto, port)
