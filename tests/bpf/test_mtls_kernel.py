"""mTLS in the kernel (issue 11 items 3-5): enrolled TCP to the waypoint's tunnel, STRICT
refused at the pod and reset at the client, through BPF_PROG_TEST_RUN.

The test veth's pod is CLIENT (a client in from_pod, a server in to_pod); BACKEND is a pod
on another node; the node's waypoint is LOCAL_WAYPOINT.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from agent.datapath import maps
from agent.datapath.flags import EP_F_EGRESS_ENFORCED, EP_F_MTLS
from agent.datapath.flowevents import EVENT_F_TUNNEL, EventDecoder
from agent.datapath.identity import HOST
from agent.datapath.identity import WAYPOINT as WAYPOINT_ID
from agent.datapath.mtls_maps import write_mtls
from agent.datapath.mtls_plan import (
    MTLS_DISABLE,
    MTLS_F_PORTS,
    MTLS_PERMISSIVE,
    MTLS_STRICT,
    MTLS_TUNNEL_PORT,
    OWN_PORT,
)
from agent.datapath.origdst import WAYPOINT_MARK
from agent.datapath.policy_ports import PortRule
from agent.datapath.testrun import TC_ACT_REDIRECT, SkBuff, test_run

from .test_datapath import (
    BACKEND,
    BACKEND_ID,
    CLIENT,
    CLIENT_ID,
    EGRESS,
    IFINDEX,
    OTHER,
    TC_ACT_OK,
    TC_ACT_SHOT,
    TCP_P,
    VIP,
    Outcome,
    Runner,
    checksums_valid,
    client_endpoint,
    l7_service,
    pkt,
    reason,
    service,
)

pytestmark = pytest.mark.bpf

LOCAL_WAYPOINT = ("10.244.1.254", 15001)
TUNNEL = (LOCAL_WAYPOINT[0], MTLS_TUNNEL_PORT)
REMOTE_WAYPOINT = "10.244.2.254"
NODE_GATEWAY = "10.244.1.1"  # the node's own address in its pod CIDR: probes come from it
IPv4 = ipaddress.IPv4Address


def enrol(r: Runner, ip: str, mode: int, ports: dict[int, int] | None = None) -> None:
    entries = {(IPv4(ip), OWN_PORT): (mode, MTLS_F_PORTS if ports else 0)}
    entries.update({(IPv4(ip), port): (m, 0) for port, m in (ports or {}).items()})
    write_mtls(r.dp, entries, ())


@pytest.fixture
def node(dp: Runner) -> Iterator[Runner]:
    """CLIENT on the test veth, not enrolled; the node's addresses in the ipcache."""
    client_endpoint(dp)
    maps.write_ipcache(dp.dp, {IPv4(LOCAL_WAYPOINT[0]): WAYPOINT_ID,
                               IPv4(REMOTE_WAYPOINT): WAYPOINT_ID, IPv4(NODE_GATEWAY): HOST})
    maps.write_waypoint(dp.dp, (IPv4(LOCAL_WAYPOINT[0]), LOCAL_WAYPOINT[1]))
    try:
        yield dp
    finally:
        maps.write_waypoint(dp.dp, None)


@pytest.fixture
def enrolled(node: Runner) -> Runner:
    """CLIENT enrolled (EP_F_MTLS, PERMISSIVE), BACKEND enrolled PERMISSIVE."""
    client_endpoint(node, flags=EP_F_MTLS)
    enrol(node, CLIENT, MTLS_PERMISSIVE)
    enrol(node, BACKEND, MTLS_PERMISSIVE)
    return node


def syn(sport: int, dport: int, **kw: Any) -> Any:
    return TCP(sport=sport, dport=dport, flags="S", seq=kw.pop("seq", 1000), **kw)


def orig_dst(r: Runner, client_port: int) -> tuple[IPv4, int, int]:
    table = r.dp.table("l7_orig_dst_v1")
    key = table.Key()
    key.client, key.client_port, key.proto = maps.be32(CLIENT), maps.be16(client_port), TCP_P
    orig = table[key]
    return maps.from_be32(orig.vip), maps.from_be16(orig.vport), orig.client_identity


def to_pod_marked(r: Runner, packet: Any, mark: int) -> Outcome:
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    ctx.mark = mark
    r.events.clear()
    result = test_run(r.dp.to_pod_fd, bytes(packet), ctx=ctx)
    r.dp.bpf.ring_buffer_consume()
    return Outcome(result.retval, Ether(result.data_out), list(r.events))


def flow_of(ev: Any) -> Any:
    return EventDecoder("n1").decode(bytes(ev))


# -- the redirect ---------------------------------------------------------------------------

def test_enrolled_to_enrolled_goes_to_the_tunnel(enrolled: Runner) -> None:
    out = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50000, 8080)))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].dst, out.packet[TCP].dport) == TUNNEL
    assert checksums_valid(out.packet)
    assert orig_dst(enrolled, 50000) == (IPv4(BACKEND), 8080, CLIENT_ID)
    (ev,) = out.events
    assert ev.type == 1 and ev.flags & EVENT_F_TUNNEL
    flow = flow_of(ev)
    # The flow names the real destination, not the waypoint, and no translation.
    assert (flow.ip.source, flow.ip.destination, flow.ip.encrypted) == (CLIENT, BACKEND, True)
    assert flow.l4.destination_port == 8080 and flow.tulle.backend == ""
    assert (flow.source.identity, flow.destination.identity) == (CLIENT_ID, BACKEND_ID)
    # Later packets follow; the waypoint's answers come back from the destination.
    ack = enrolled.from_pod(pkt(CLIENT, BACKEND, TCP(sport=50000, dport=8080, flags="A")))
    assert (ack.packet[IP].dst, ack.packet[TCP].dport) == TUNNEL and ack.events == []
    reply = enrolled.to_pod(pkt(TUNNEL[0], CLIENT, TCP(sport=TUNNEL[1], dport=50000, flags="SA")))
    assert reply.verdict == TC_ACT_OK
    assert (reply.packet[IP].src, reply.packet[TCP].sport) == (BACKEND, 8080)
    assert checksums_valid(reply.packet)
    assert reply.events == []  # no translation the client asked for: no reply flow


def test_a_service_backend_goes_to_the_tunnel_and_replies_come_from_the_vip(
    enrolled: Runner,
) -> None:
    service(enrolled, [(BACKEND, 8080)])
    out = enrolled.from_pod(pkt(CLIENT, VIP, syn(50001, 80)))
    assert (out.packet[IP].dst, out.packet[TCP].dport) == TUNNEL
    assert orig_dst(enrolled, 50001) == (IPv4(BACKEND), 8080, CLIENT_ID)  # the backend pod
    flow = flow_of(out.events[0])
    assert (flow.ip.destination, flow.ip.encrypted, flow.tulle.backend) == (
        BACKEND, True, f"{BACKEND}:8080")
    again = enrolled.from_pod(pkt(CLIENT, VIP, TCP(sport=50001, dport=80, flags="A")))
    assert (again.packet[IP].dst, again.packet[TCP].dport) == TUNNEL
    reply = enrolled.to_pod(pkt(TUNNEL[0], CLIENT, TCP(sport=TUNNEL[1], dport=50001, flags="SA")))
    assert (reply.packet[IP].src, reply.packet[TCP].sport) == (VIP, 80)
    (ev,) = reply.events  # the translated connection's reply flow
    assert flow_of(ev).ip.source_xlated == VIP


def test_same_node_enrolled_pairs_are_tunnelled_too(enrolled: Runner) -> None:
    enrol(enrolled, "10.244.1.3", MTLS_STRICT)
    out = enrolled.from_pod(pkt(CLIENT, "10.244.1.3", syn(50002, 8080)))
    assert (out.packet[IP].dst, out.packet[TCP].dport) == TUNNEL


@pytest.mark.parametrize("client_enrolled,backend", [
    (True, None),  # the destination is not enrolled
    (True, MTLS_DISABLE),
    (False, MTLS_PERMISSIVE),  # the client is not enrolled
], ids=["plain-destination", "disable", "plain-client"])
def test_no_tunnel_unless_both_enrolled_and_not_disabled(
    node: Runner, client_enrolled: bool, backend: int | None
) -> None:
    if client_enrolled:
        client_endpoint(node, flags=EP_F_MTLS)
        enrol(node, CLIENT, MTLS_PERMISSIVE)
    if backend is not None:
        enrol(node, BACKEND, backend)
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(50003, 8080)))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].dst, out.packet[TCP].dport) == (BACKEND, 8080)
    assert not out.events[0].flags & EVENT_F_TUNNEL
    assert flow_of(out.events[0]).ip.encrypted is False


def test_port_level_modes_decide_per_port(enrolled: Runner) -> None:
    enrol(enrolled, BACKEND, MTLS_STRICT, {8080: MTLS_DISABLE})
    plain = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50004, 8080)))
    assert (plain.packet[IP].dst, plain.packet[TCP].dport) == (BACKEND, 8080)
    tunnelled = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50005, 9090)))
    assert (tunnelled.packet[IP].dst, tunnelled.packet[TCP].dport) == TUNNEL


def test_an_l7_route_keeps_precedence(enrolled: Runner) -> None:
    l7_service(enrolled, [(BACKEND, 8080)])
    out = enrolled.from_pod(pkt(CLIENT, VIP, syn(50006, 80)))
    assert (out.packet[IP].dst, out.packet[TCP].dport) == LOCAL_WAYPOINT
    assert orig_dst(enrolled, 50006)[:2] == (IPv4(VIP), 80)
    assert not out.events[0].flags & EVENT_F_TUNNEL


def test_egress_policy_still_judges_the_real_destination(enrolled: Runner) -> None:
    client_endpoint(enrolled, flags=EP_F_MTLS | EP_F_EGRESS_ENFORCED)
    denied = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50007, 8080)))
    assert denied.verdict == TC_ACT_SHOT and reason(denied.events[0]) == "POLICY_DENIED"
    assert denied.events[0].dst_identity == BACKEND_ID
    maps.write_policy_rule(enrolled.dp, IPv4(CLIENT), BACKEND_ID, EGRESS,
                           [PortRule(TCP_P, 8080, 8080)])
    allowed = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50008, 8080)))
    assert (allowed.packet[IP].dst, allowed.packet[TCP].dport) == TUNNEL


def test_no_waypoint_no_tunnel(enrolled: Runner) -> None:
    maps.write_waypoint(enrolled.dp, None)
    out = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50009, 8080)))
    assert (out.packet[IP].dst, out.packet[TCP].dport) == (BACKEND, 8080)


# -- STRICT at the destination ------------------------------------------------------------

@pytest.fixture
def strict_pod(node: Runner) -> Runner:
    """CLIENT (the pod on the test veth) enrolled, STRICT on every port but 7070."""
    client_endpoint(node, flags=EP_F_MTLS)
    enrol(node, CLIENT, MTLS_STRICT, {7070: MTLS_PERMISSIVE})
    return node


def test_strict_drops_plaintext_from_another_pod(strict_pod: Runner) -> None:
    out = strict_pod.to_pod(pkt(OTHER, CLIENT, syn(41000, 8080)))
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert reason(ev) == "AUTH_REQUIRED"
    flow = flow_of(ev)
    assert flow.drop_reason_desc == "AUTH_REQUIRED" and flow.verdict.name == "DROPPED"
    # Not only SYNs: a stray segment does not open a way in either.
    ack = strict_pod.to_pod(pkt(OTHER, CLIENT, TCP(sport=41000, dport=8080, flags="A")))
    assert ack.verdict == TC_ACT_SHOT and reason(ack.events[0]) == "AUTH_REQUIRED"


def test_strict_admits_the_marked_local_waypoint_and_the_node(strict_pod: Runner) -> None:
    own = to_pod_marked(strict_pod, pkt(LOCAL_WAYPOINT[0], CLIENT, syn(41001, 8080)),
                        WAYPOINT_MARK)
    assert own.verdict == TC_ACT_OK
    probe = strict_pod.to_pod(pkt(NODE_GATEWAY, CLIENT, syn(41002, 8080)))
    assert probe.verdict == TC_ACT_OK


@pytest.mark.parametrize("source,mark", [
    (LOCAL_WAYPOINT[0], 0),  # another local process bound the waypoint's address
    (REMOTE_WAYPOINT, 0),  # another node's waypoint delivers to its own pods only
], ids=["spoofed-local-waypoint", "remote-waypoint"])
def test_strict_refuses_waypoint_addresses_without_proof(
    strict_pod: Runner, source: str, mark: int
) -> None:
    out = to_pod_marked(strict_pod, pkt(source, CLIENT, syn(41003, 8080)), mark)
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "AUTH_REQUIRED"


def test_permissive_port_accepts_plaintext(strict_pod: Runner) -> None:
    out = strict_pod.to_pod(pkt(OTHER, CLIENT, syn(41004, 7070)))
    assert out.verdict == TC_ACT_OK


@pytest.mark.parametrize("l4", [UDP(sport=5000, dport=8080) / b"x", ICMP(type=8)],
                         ids=["udp", "icmp"])
def test_non_tcp_is_not_subject_to_strict(strict_pod: Runner, l4: Any) -> None:
    assert strict_pod.to_pod(pkt(OTHER, CLIENT, l4)).verdict == TC_ACT_OK


# -- the reset at a plaintext client ------------------------------------------------------

def _parse_rst(out: Outcome, client_sport: int) -> Any:
    assert out.verdict == TC_ACT_REDIRECT
    rst = out.packet
    assert len(bytes(rst)) == 14 + 20 + 20
    assert (rst[Ether].src, rst[Ether].dst) == ("02:00:00:00:00:02", "02:00:00:00:00:01")
    assert rst[IP].dst == CLIENT and rst[IP].ihl == 5 and rst[IP].len == 40
    assert rst[TCP].dport == client_sport and rst[TCP].flags == "RA"
    assert rst[TCP].seq == 0 and rst[TCP].window == 0 and rst[TCP].dataofs == 5
    assert checksums_valid(rst)
    return rst


def test_a_plaintext_client_gets_a_reset_from_a_strict_port(node: Runner) -> None:
    enrol(node, BACKEND, MTLS_STRICT)
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(42000, 8080, seq=123456789,
                                                  options=[("MSS", 1460), ("SAckOK", b"")])))
    rst = _parse_rst(out, 42000)
    assert (rst[IP].src, rst[TCP].sport) == (BACKEND, 8080)
    assert rst[TCP].ack == 123456790  # the SYN's sequence number + 1
    (ev,) = out.events
    assert reason(ev) == "AUTH_REQUIRED" and ev.verdict == 2  # DROPPED
    assert (maps.from_be32(ev.saddr), maps.from_be32(ev.daddr)) == (IPv4(CLIENT), IPv4(BACKEND))
    assert node.dp.table("l7_orig_dst_v1").get(_orig_key(node, 42000)) is None


def _orig_key(r: Runner, client_port: int) -> Any:
    table = r.dp.table("l7_orig_dst_v1")
    key = table.Key()
    key.client, key.client_port, key.proto = maps.be32(CLIENT), maps.be16(client_port), TCP_P
    return key


def test_the_reset_acknowledges_syn_data_and_wraps(node: Runner) -> None:
    enrol(node, BACKEND, MTLS_STRICT)
    out = node.from_pod(pkt(CLIENT, BACKEND, syn(42001, 8080, seq=0xFFFFFFFF) / b"hello"))
    assert _parse_rst(out, 42001)[TCP].ack == (0xFFFFFFFF + 1 + 5) & 0xFFFFFFFF


def test_a_reset_through_a_service_comes_from_the_vip(node: Runner) -> None:
    enrol(node, BACKEND, MTLS_STRICT)
    service(node, [(BACKEND, 8080)])
    out = node.from_pod(pkt(CLIENT, VIP, syn(42002, 80)))
    rst = _parse_rst(out, 42002)
    assert (rst[IP].src, rst[TCP].sport) == (VIP, 80)


def test_an_enrolled_client_without_a_waypoint_is_reset_too(enrolled: Runner) -> None:
    enrol(enrolled, BACKEND, MTLS_STRICT)
    maps.write_waypoint(enrolled.dp, None)
    _parse_rst(enrolled.from_pod(pkt(CLIENT, BACKEND, syn(42003, 8080))), 42003)


def test_a_plaintext_non_syn_to_strict_is_dropped_at_the_client(node: Runner) -> None:
    enrol(node, BACKEND, MTLS_STRICT)
    out = node.from_pod(pkt(CLIENT, BACKEND, TCP(sport=42004, dport=8080, flags="A")))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "AUTH_REQUIRED"


def test_non_tcp_to_a_strict_pod_leaves_the_client(node: Runner) -> None:
    enrol(node, BACKEND, MTLS_STRICT)
    out = node.from_pod(pkt(CLIENT, BACKEND, UDP(sport=5000, dport=8080) / b"x"))
    assert out.verdict == TC_ACT_OK and out.packet[IP].dst == BACKEND


def test_a_retransmitted_syn_follows_its_tunnel_without_a_second_flow(enrolled: Runner) -> None:
    enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50010, 8080)))
    again = enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50010, 8080)))
    assert (again.packet[IP].dst, again.packet[TCP].dport) == TUNNEL and again.events == []


def test_the_same_client_port_to_another_destination_is_not_taken_for_the_tunnel(
    enrolled: Runner,
) -> None:
    enrolled.from_pod(pkt(CLIENT, BACKEND, syn(50011, 8080)))
    other = enrolled.from_pod(pkt(CLIENT, OTHER, TCP(sport=50011, dport=8080, flags="A")))
    assert (other.packet[IP].dst, other.packet[TCP].dport) == (OTHER, 8080)
