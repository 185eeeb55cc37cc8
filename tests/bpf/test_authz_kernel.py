"""L4-only AuthorizationPolicy in the kernel (issue 14 item 1), through BPF_PROG_TEST_RUN:
judged in from_pod on the client's node from authz_v1 entries compiled from real policies;
a denied SYN becomes a reset to the client and a DROPPED flow naming the policy; a pod under
such a policy takes new connections only from pods, the node and the waypoints.

The test veth's pod is CLIENT (shop/web, ServiceAccount web); BACKEND (shop/api) is a pod on
another node; OTHER is a pod of another namespace (evil).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP

from agent.datapath import maps
from agent.datapath.authz_l4 import UNKNOWN_CLIENT, compile_authz, kernel_entries
from agent.datapath.authz_maps import read_authz, write_authz
from agent.datapath.flags import EP_F_AUTHZ_KERNEL
from agent.datapath.flowevents import EventDecoder
from agent.datapath.identity import HOST, WORLD
from agent.datapath.policy_names import PolicyNames
from agent.datapath.policy_plan import PodEndpoint
from agent.datapath.testrun import TC_ACT_REDIRECT
from tests.unit.authz.helpers import TD, policy, rule

from .test_datapath import (
    BACKEND,
    BACKEND_ID,
    CLIENT,
    CLIENT_ID,
    OTHER,
    OTHER_ID,
    TC_ACT_OK,
    TC_ACT_SHOT,
    VIP,
    Outcome,
    Runner,
    checksums_valid,
    client_endpoint,
    pkt,
    reason,
    service,
)

pytestmark = pytest.mark.bpf
IPv4 = ipaddress.IPv4Address
NODE_GATEWAY = "10.244.1.1"

PODS = [
    PodEndpoint("shop", "web", IPv4(CLIENT), CLIENT_ID, {"app": "web"}, {}, "web"),
    PodEndpoint("shop", "api", IPv4(BACKEND), BACKEND_ID, {"app": "api"}, {}, "api"),
    PodEndpoint("evil", "x", IPv4(OTHER), OTHER_ID, {"app": "x"}, {}, "default"),
]
API = {"matchLabels": {"app": "api"}}


def judge(r: Runner, *policies: Any, local: str = CLIENT) -> PolicyNames:
    """Compile ``policies`` for the clients at ``local`` and write authz_v1 as the agent does."""
    names = PolicyNames()
    entries = kernel_entries(compile_authz(list(policies), PODS, [IPv4(local)], TD), names)
    write_authz(r.dp, entries, ())
    assert read_authz(r.dp) == entries
    return names


@pytest.fixture
def node(dp: Runner) -> Iterator[Runner]:
    client_endpoint(dp)
    try:
        yield dp
    finally:
        dp.dp.table("authz_v1").clear()


def syn(sport: int, dport: int, seq: int = 1000) -> Any:
    return TCP(sport=sport, dport=dport, flags="S", seq=seq)


def reset_to_client(out: Outcome, sport: int, src: tuple[str, int]) -> None:
    assert out.verdict == TC_ACT_REDIRECT  # straight back into the client's namespace
    rst = out.packet
    assert rst[IP].dst == CLIENT and (rst[IP].src, rst[TCP].sport) == src
    assert rst[TCP].dport == sport and rst[TCP].flags == "RA" and checksums_valid(rst)


def denied_flow(out: Outcome, names: PolicyNames) -> Any:
    (ev,) = out.events
    return EventDecoder("n1", authz_names=names).decode(bytes(ev))


def test_a_deny_by_namespace_resets_the_syn_and_names_the_policy(node: Runner) -> None:
    names = judge(node, policy("deny-shop", {"selector": API, "action": "DENY",
                                             "rules": [rule(source={"namespaces": ["shop"]})]}))
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(43000, 8080, seq=77)))
    reset_to_client(out, 43000, (BACKEND, 8080))
    assert out.packet[TCP].ack == 78
    flow = denied_flow(out, names)
    assert flow.verdict.name == "DROPPED" and flow.drop_reason_desc == "POLICY_DENY"
    assert [(p.namespace, p.name, p.kind) for p in flow.egress_denied_by] == [
        ("shop", "deny-shop", "AuthorizationPolicy")]
    assert (flow.source.identity, flow.destination.identity) == (CLIENT_ID, BACKEND_ID)


def test_an_allow_for_another_service_account_denies_and_names_it(node: Runner) -> None:
    names = judge(node, policy("allow-admin", {
        "selector": API, "rules": [rule(source={"serviceAccounts": ["shop/admin"]})]}))
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(43001, 8080)))
    reset_to_client(out, 43001, (BACKEND, 8080))
    flow = denied_flow(out, names)
    assert flow.drop_reason_desc == "POLICY_DENIED"
    assert [p.name for p in flow.egress_denied_by] == ["allow-admin"]


def test_the_allowed_service_account_and_port_pass(node: Runner) -> None:
    judge(node, policy("allow-web", {"selector": API, "rules": [
        rule(source={"principals": [f"{TD}/ns/shop/sa/web"]}, operation={"ports": ["8080"]})]}))
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(43002, 8080)))
    assert out.verdict == TC_ACT_OK and out.packet[IP].dst == BACKEND
    assert [ev.type for ev in out.events] == [1]  # NEW
    other_port = node.from_pod(pkt(CLIENT, BACKEND, syn(43003, 9090)))
    reset_to_client(other_port, 43003, (BACKEND, 9090))


def test_a_reset_through_a_service_comes_from_the_vip(node: Runner) -> None:
    judge(node, policy("deny-all", {"selector": API, "action": "DENY", "rules": [{}]}))
    service(node, [(BACKEND, 8080)])
    reset_to_client(node.from_pod(pkt(CLIENT, VIP, syn(43004, 80))), 43004, (VIP, 80))


def test_udp_is_dropped_not_reset(node: Runner) -> None:
    judge(node, policy("deny-all", {"selector": API, "action": "DENY", "rules": [{}]}))
    out = node.from_pod(pkt(CLIENT, BACKEND, UDP(sport=5000, dport=53) / b"q"))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "POLICY_DENY"


def test_a_client_without_its_own_entry_is_denied(node: Runner) -> None:
    """Entries compiled for another local pod only: CLIENT meets the fallback entry."""
    judge(node, policy("any", {"selector": API, "rules": [{}]}), local=OTHER)
    assert (UNKNOWN_CLIENT, BACKEND_ID) in read_authz(node.dp)
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(43005, 8080)))
    reset_to_client(out, 43005, (BACKEND, 8080))
    assert reason(out.events[0]) == "POLICY_DENIED"


def test_destinations_without_a_kernel_policy_are_untouched(node: Runner) -> None:
    judge(node, policy("deny-all", {"selector": API, "action": "DENY", "rules": [{}]}))
    assert node.from_pod(pkt(CLIENT, OTHER, syn(43006, 8080))).verdict == TC_ACT_OK


def test_a_pod_under_kernel_authz_takes_only_pods_node_and_waypoint(node: Runner) -> None:
    client_endpoint(node, flags=EP_F_AUTHZ_KERNEL)
    maps.write_ipcache(node.dp, {IPv4(NODE_GATEWAY): HOST})
    assert node.to_pod(pkt(OTHER, CLIENT, syn(44000, 8080))).verdict == TC_ACT_OK
    assert node.to_pod(pkt(NODE_GATEWAY, CLIENT, syn(44001, 8080))).verdict == TC_ACT_OK
    world = node.to_pod(pkt("192.0.2.7", CLIENT, syn(44002, 8080)))
    assert world.verdict == TC_ACT_SHOT and reason(world.events[0]) == "POLICY_DENIED"
    assert world.events[0].src_identity == WORLD
