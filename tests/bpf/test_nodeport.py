"""from_netdev / to_netdev (NodePort and LoadBalancer Services on a node's uplink) through
BPF_PROG_TEST_RUN: translation and reply translation for both external traffic policies,
packets that are not theirs left untouched, malformed and spoofed packets dropped with a
reason. The programs share the node datapath's pinned maps (services, conntrack, config)."""

from __future__ import annotations

import ctypes
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from agent.datapath import drop_reasons, maps
from agent.datapath.bpf_loader import BPF, BPF_DIR, load_fn, load_program
from agent.datapath.maglev import maglev_table
from agent.datapath.origdst import OriginalDestination, OriginalDestinations
from agent.datapath.programs import Datapath
from agent.datapath.testrun import SkBuff, test_run
from tests.bpf.conftest import loaded_datapath
from tests.bpf.test_datapath import checksums_valid

pytestmark = pytest.mark.bpf

TC_ACT_OK, TC_ACT_SHOT = 0, 2
IFINDEX = 1
NODE = "10.240.0.11"
POD_CIDR = "10.244.1.0/24"
CLIENT, OTHER_CLIENT = "10.240.0.2", "10.240.0.3"
LOCAL_BACKEND, REMOTE_BACKEND = "10.244.1.5", "10.244.2.5"
LB_IP = "10.240.0.200"
NODE_PORT, TCP_P, UDP_P = 30080, 6, 17
NEW, DROP, REPLY = 1, 2, 4
TRANSLATED, DROPPED = 6, 2


@dataclass
class Outcome:
    verdict: int
    data: bytes
    events: list[Any]

    @property
    def packet(self) -> Any:
        return Ether(self.data)


class Netdev:
    """The uplink programs compiled against the datapath's pin dir (shared maps)."""

    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.bpf = load_program([BPF_DIR / "from_netdev.c", BPF_DIR / "to_netdev.c"],
                                [f'-DTULLE_PIN_DIR="{dp.pin_dir}"'])
        self.from_fd = load_fn(self.bpf, "tulle_from_netdev", BPF.SCHED_CLS).fd
        self.to_fd = load_fn(self.bpf, "tulle_to_netdev", BPF.SCHED_CLS).fd
        self.events: list[Any] = []
        self.bpf[b"flow_events_v1"].open_ring_buffer(self._on_event)
        self.layout = self.bpf[b"flow_event_layout"].Leaf

    def _on_event(self, _ctx: Any, data: Any, _size: int) -> None:
        self.events.append(self.layout.from_buffer_copy(
            ctypes.string_at(data, ctypes.sizeof(self.layout))))

    def reset(self) -> None:
        for name in ("ct_v1", "lb_services_v1", "lb_backends_v1", "lb_maglev_v1",
                     "lb_affinity_v1", "ipcache_v1"):
            self.dp.table(name).clear()
        maps.write_node_addresses(self.dp, ipaddress.IPv4Address(NODE),
                                  ipaddress.IPv4Network(POD_CIDR))
        self.bpf.ring_buffer_consume()
        self.events.clear()

    def _run(self, fd: int, pkt: Any) -> Outcome:
        ctx = SkBuff()
        ctx.ifindex = IFINDEX
        self.events.clear()
        result = test_run(fd, bytes(pkt), ctx=ctx)
        self.bpf.ring_buffer_consume()
        return Outcome(result.retval, result.data_out, list(self.events))

    def arrive(self, pkt: Any) -> Outcome:
        return self._run(self.from_fd, pkt)

    def leave(self, pkt: Any) -> Outcome:
        return self._run(self.to_fd, pkt)


@pytest.fixture(scope="module")
def netdev_module() -> Iterator[Netdev]:
    with loaded_datapath() as dp:
        netdev = Netdev(dp)
        try:
            yield netdev
        finally:
            maps.write_node_addresses(dp, None, None)
            netdev.bpf.cleanup()


@pytest.fixture
def nd(netdev_module: Netdev) -> Netdev:
    netdev_module.reset()
    return netdev_module


def external(nd: Netdev, backends: list[str], *, local: bool = False, vip: str = NODE,
             port: int = NODE_PORT, proto: int = TCP_P, flags: int | None = None) -> None:
    bs = [(ipaddress.IPv4Address(ip), 8080) for ip in backends]
    table = maglev_table([f"{ip}:{p}" for ip, p in bs]) if bs else ()
    if flags is None:
        flags = maps.LB_F_EXTERNAL | (maps.LB_F_LOCAL if local else 0)
    maps.write_service(nd.dp, ipaddress.IPv4Address(vip), port, proto, bs, table, 0, None,
                       flags)


def pkt(src: str, dst: str, l4: Any) -> Any:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) / l4


def reason(ev: Any) -> str:
    return drop_reasons.by_code(ev.drop_reason).name


def addr(value: int) -> str:
    return str(maps.from_be32(value))


# -- externalTrafficPolicy: Local ---------------------------------------------------------

def test_local_dnats_to_a_local_backend_keeping_the_client_address(nd: Netdev) -> None:
    external(nd, [LOCAL_BACKEND], local=True)
    out = nd.arrive(pkt(CLIENT, NODE, TCP(sport=40000, dport=NODE_PORT, flags="S")))
    assert out.verdict == TC_ACT_OK
    ip, tcp = out.packet[IP], out.packet[TCP]
    assert (ip.src, tcp.sport, ip.dst, tcp.dport) == (CLIENT, 40000, LOCAL_BACKEND, 8080)
    assert checksums_valid(out.packet)
    (ev,) = out.events
    assert (ev.type, ev.verdict) == (NEW, TRANSLATED)
    assert (addr(ev.orig_daddr), maps.from_be16(ev.orig_dport)) == (NODE, NODE_PORT)
    assert (addr(ev.saddr), addr(ev.daddr)) == (CLIENT, LOCAL_BACKEND)


def test_local_backends_reply_leaves_from_the_node_port(nd: Netdev) -> None:
    external(nd, [LOCAL_BACKEND], local=True)
    nd.arrive(pkt(CLIENT, NODE, TCP(sport=40000, dport=NODE_PORT, flags="S")))
    out = nd.leave(pkt(LOCAL_BACKEND, CLIENT, TCP(sport=8080, dport=40000, flags="SA")))
    assert out.verdict == TC_ACT_OK
    ip, tcp = out.packet[IP], out.packet[TCP]
    assert (ip.src, tcp.sport, ip.dst, tcp.dport) == (NODE, NODE_PORT, CLIENT, 40000)
    assert checksums_valid(out.packet)
    (ev,) = out.events
    assert (ev.type, ev.verdict) == (REPLY, TRANSLATED)
    # Later packets of the connection keep their backend and translation.
    again = nd.arrive(pkt(CLIENT, NODE, TCP(sport=40000, dport=NODE_PORT, flags="A")))
    assert again.packet[IP].dst == LOCAL_BACKEND and again.events == []


def test_local_without_a_local_backend_drops_never_hops(nd: Netdev) -> None:
    external(nd, [], local=True)  # the agent lists only this node's backends: none here
    out = nd.arrive(pkt(CLIENT, NODE, TCP(sport=40001, dport=NODE_PORT, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert (ev.type, ev.verdict) == (DROP, DROPPED)
    assert reason(ev) == "SERVICE_BACKEND_NOT_FOUND"


# -- externalTrafficPolicy: Cluster -------------------------------------------------------

def test_cluster_to_a_remote_backend_snats_to_the_node(nd: Netdev) -> None:
    external(nd, [REMOTE_BACKEND])
    out = nd.arrive(pkt(CLIENT, NODE, TCP(sport=40002, dport=NODE_PORT, flags="S")))
    assert out.verdict == TC_ACT_OK
    ip, tcp = out.packet[IP], out.packet[TCP]
    assert (ip.src, tcp.sport, ip.dst, tcp.dport) == (NODE, 40002, REMOTE_BACKEND, 8080)
    assert checksums_valid(out.packet)
    (ev,) = out.events
    assert (ev.type, ev.verdict) == (NEW, TRANSLATED)
    assert (addr(ev.orig_daddr), maps.from_be16(ev.orig_dport)) == (NODE, NODE_PORT)

    # The remote backend's reply arrives on the uplink, to the node: back to the client.
    reply = nd.arrive(pkt(REMOTE_BACKEND, NODE, TCP(sport=8080, dport=40002, flags="SA")))
    assert reply.verdict == TC_ACT_OK
    ip, tcp = reply.packet[IP], reply.packet[TCP]
    assert (ip.src, tcp.sport, ip.dst, tcp.dport) == (NODE, NODE_PORT, CLIENT, 40002)
    assert checksums_valid(reply.packet)
    assert [(e.type, e.verdict) for e in reply.events] == [(REPLY, TRANSLATED)]


def test_cluster_to_a_local_backend_needs_no_snat(nd: Netdev) -> None:
    external(nd, [LOCAL_BACKEND])
    out = nd.arrive(pkt(CLIENT, NODE, TCP(sport=40003, dport=NODE_PORT, flags="S")))
    assert (out.packet[IP].src, out.packet[IP].dst) == (CLIENT, LOCAL_BACKEND)
    back = nd.leave(pkt(LOCAL_BACKEND, CLIENT, TCP(sport=8080, dport=40003, flags="SA")))
    assert (back.packet[IP].src, back.packet[TCP].sport) == (NODE, NODE_PORT)


SNAT_MIN = 61000  # nodeport.h NODEPORT_SNAT_MIN: above Linux's default ephemeral range


def test_a_second_client_on_the_same_port_is_snated_to_another_node_port(nd: Netdev) -> None:
    external(nd, [REMOTE_BACKEND])
    first = nd.arrive(pkt(CLIENT, NODE, TCP(sport=40004, dport=NODE_PORT, flags="S")))
    assert first.packet[TCP].sport == 40004  # the client's own port while it is free
    out = nd.arrive(pkt(OTHER_CLIENT, NODE, TCP(sport=40004, dport=NODE_PORT, flags="S")))
    assert out.verdict == TC_ACT_OK
    ip, tcp = out.packet[IP], out.packet[TCP]
    assert (ip.src, ip.dst, tcp.dport) == (NODE, REMOTE_BACKEND, 8080)
    assert SNAT_MIN <= tcp.sport <= 65535
    assert checksums_valid(out.packet)
    moved = tcp.sport
    # The second client's later packets keep the port its SYN was given.
    ack = nd.arrive(pkt(OTHER_CLIENT, NODE, TCP(sport=40004, dport=NODE_PORT, flags="A")))
    assert (ack.verdict, ack.packet[TCP].sport) == (TC_ACT_OK, moved)
    # Each backend reply goes back to its own client, from the node port it asked for.
    to_first = nd.arrive(pkt(REMOTE_BACKEND, NODE, TCP(sport=8080, dport=40004, flags="SA")))
    assert (to_first.packet[IP].dst, to_first.packet[TCP].dport) == (CLIENT, 40004)
    to_other = nd.arrive(pkt(REMOTE_BACKEND, NODE, TCP(sport=8080, dport=moved, flags="SA")))
    ip, tcp = to_other.packet[IP], to_other.packet[TCP]
    assert (ip.src, tcp.sport, ip.dst, tcp.dport) == (NODE, NODE_PORT, OTHER_CLIENT, 40004)
    assert checksums_valid(to_other.packet)


def test_when_every_snat_port_is_held_the_new_client_is_dropped_not_given_replies(
    nd: Netdev,
) -> None:
    external(nd, [REMOTE_BACKEND])
    nd.arrive(pkt(CLIENT, NODE, TCP(sport=40005, dport=NODE_PORT, flags="S")))
    ct = nd.dp.table("ct_v1")
    owner = ct[next(k for k in ct.keys() if k.dir == 4)]  # CT_NODEPORT: the first client's
    for port in range(SNAT_MIN, 65536):  # every other candidate, held by the first client
        key = ct.Key()
        key.tuple.saddr, key.tuple.daddr = maps.be32(NODE), maps.be32(REMOTE_BACKEND)
        key.tuple.sport, key.tuple.dport = maps.be16(port), maps.be16(8080)
        key.tuple.proto, key.dir = TCP_P, 4
        ct[key] = owner
    out = nd.arrive(pkt(OTHER_CLIENT, NODE, TCP(sport=40005, dport=NODE_PORT, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    assert reason(out.events[0]) == "CT_MAP_INSERTION_FAILED"
    reply = nd.arrive(pkt(REMOTE_BACKEND, NODE, TCP(sport=8080, dport=40005, flags="SA")))
    assert reply.packet[IP].dst == CLIENT  # still the first client's


def test_a_closed_connections_port_is_reused_by_the_next_client(nd: Netdev) -> None:
    external(nd, [REMOTE_BACKEND])
    nd.arrive(pkt(CLIENT, NODE, TCP(sport=40006, dport=NODE_PORT, flags="S")))
    nd.arrive(pkt(CLIENT, NODE, TCP(sport=40006, dport=NODE_PORT, flags="R")))
    out = nd.arrive(pkt(OTHER_CLIENT, NODE, TCP(sport=40006, dport=NODE_PORT, flags="S")))
    assert (out.verdict, out.packet[TCP].sport) == (TC_ACT_OK, 40006)
    reply = nd.arrive(pkt(REMOTE_BACKEND, NODE, TCP(sport=8080, dport=40006, flags="SA")))
    assert reply.packet[IP].dst == OTHER_CLIENT


def test_a_loadbalancer_address_is_served_at_its_service_port(nd: Netdev) -> None:
    external(nd, [LOCAL_BACKEND], vip=LB_IP, port=80, proto=UDP_P)
    out = nd.arrive(pkt(CLIENT, LB_IP, UDP(sport=5353, dport=80) / b"hi"))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].dst, out.packet[UDP].dport) == (LOCAL_BACKEND, 8080)
    assert checksums_valid(out.packet)
    back = nd.leave(pkt(LOCAL_BACKEND, CLIENT, UDP(sport=8080, dport=5353) / b"ok"))
    assert (back.packet[IP].src, back.packet[UDP].sport) == (LB_IP, 80)


# -- Gateway listeners and Ingress class ports (LB_F_L7): this node's waypoint -------------

WAYPOINT = (ipaddress.IPv4Address("10.244.1.254"), 15001)  # in this node's pod CIDR


def test_a_gateway_address_goes_to_the_waypoint_keeping_the_client(nd: Netdev) -> None:
    external(nd, [], vip=LB_IP, port=443, flags=maps.LB_F_L7 | maps.LB_F_EXTERNAL)
    maps.write_waypoint(nd.dp, WAYPOINT)
    reader = OriginalDestinations(nd.dp.pin_dir, wait=0)
    try:
        out = nd.arrive(pkt(CLIENT, LB_IP, TCP(sport=40010, dport=443, flags="S")))
        assert out.verdict == TC_ACT_OK
        ip, tcp = out.packet[IP], out.packet[TCP]
        # Never SNATed: the waypoint sees (and forwards in X-Forwarded-For) the client.
        assert (ip.src, tcp.sport, ip.dst, tcp.dport) == (CLIENT, 40010, "10.244.1.254", 15001)
        assert checksums_valid(out.packet)
        assert reader.lookup(CLIENT, 40010) == OriginalDestination(LB_IP, 443, 2)  # world
        back = nd.leave(pkt("10.244.1.254", CLIENT, TCP(sport=15001, dport=40010, flags="SA")))
        assert (back.packet[IP].src, back.packet[TCP].sport) == (LB_IP, 443)
        assert checksums_valid(back.packet)
    finally:
        reader.close()
        maps.write_waypoint(nd.dp, None)


def test_a_new_connection_to_another_gateway_address_gets_that_addresss_replies(
    nd: Netdev,
) -> None:
    """Both Gateway addresses lead to the waypoint, so a client port reused toward the second
    address translates onto the first connection's tuple; an entry left open (its close never
    seen) must not answer the new connection from the first address (the client would reset)."""
    other_lb = "10.240.0.201"
    external(nd, [], vip=LB_IP, port=443, flags=maps.LB_F_L7 | maps.LB_F_EXTERNAL)
    external(nd, [], vip=other_lb, port=80, flags=maps.LB_F_L7 | maps.LB_F_EXTERNAL)
    maps.write_waypoint(nd.dp, WAYPOINT)
    try:
        nd.arrive(pkt(CLIENT, LB_IP, TCP(sport=40011, dport=443, flags="S")))
        out = nd.arrive(pkt(CLIENT, other_lb, TCP(sport=40011, dport=80, flags="S")))
        assert out.verdict == TC_ACT_OK
        assert (out.packet[IP].dst, out.packet[TCP].dport) == ("10.244.1.254", 15001)
        back = nd.leave(pkt("10.244.1.254", CLIENT, TCP(sport=15001, dport=40011, flags="SA")))
        assert (back.packet[IP].src, back.packet[TCP].sport) == (other_lb, 80)
        assert checksums_valid(back.packet)
    finally:
        maps.write_waypoint(nd.dp, None)


def test_a_gateway_address_without_a_waypoint_drops(nd: Netdev) -> None:
    external(nd, [], vip=LB_IP, port=80, flags=maps.LB_F_L7 | maps.LB_F_EXTERNAL)
    maps.write_waypoint(nd.dp, None)
    out = nd.arrive(pkt(CLIENT, LB_IP, TCP(sport=40011, dport=80, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    assert reason(out.events[0]) == "SERVICE_BACKEND_NOT_FOUND"


def test_a_gateway_listener_is_not_served_from_outside_unless_flagged(nd: Netdev) -> None:
    external(nd, [], vip=LB_IP, port=80, flags=maps.LB_F_L7)  # reached from pods only
    maps.write_waypoint(nd.dp, WAYPOINT)
    try:
        packet = pkt(CLIENT, LB_IP, TCP(sport=40012, dport=80, flags="S"))
        out = nd.arrive(packet)
        assert (out.verdict, out.data) == (TC_ACT_OK, bytes(packet))
    finally:
        maps.write_waypoint(nd.dp, None)


# -- what is not theirs, and what is bad --------------------------------------------------

@pytest.mark.parametrize("packet", [
    pkt(CLIENT, NODE, TCP(sport=40005, dport=30081, flags="S")),  # a port no Service has
    pkt(CLIENT, NODE, TCP(sport=40005, dport=22, flags="S")),  # the node's own service
    pkt("10.244.2.7", LOCAL_BACKEND, TCP(sport=40005, dport=8080, flags="S")),  # pod to pod
    Ether() / ARP(psrc=CLIENT, pdst=NODE),
], ids=["unknown-node-port", "node-port-22", "pod-to-pod", "arp"])
def test_packets_for_no_external_service_pass_untouched(nd: Netdev, packet: Any) -> None:
    external(nd, [LOCAL_BACKEND])
    out = nd.arrive(packet)
    assert (out.verdict, out.data, out.events) == (TC_ACT_OK, bytes(packet), [])
    left = nd.leave(packet)
    assert (left.verdict, left.data) == (TC_ACT_OK, bytes(packet))


def test_a_clusterip_entry_is_not_served_from_outside(nd: Netdev) -> None:
    external(nd, [LOCAL_BACKEND], vip="10.96.0.50", port=80, flags=0)
    packet = pkt(CLIENT, "10.96.0.50", TCP(sport=40006, dport=80, flags="S"))
    out = nd.arrive(packet)
    assert (out.verdict, out.data) == (TC_ACT_OK, bytes(packet))


def test_a_source_in_this_nodes_pod_cidr_is_spoofed(nd: Netdev) -> None:
    external(nd, [LOCAL_BACKEND], local=True)
    out = nd.arrive(pkt("10.244.1.77", NODE, TCP(sport=40007, dport=NODE_PORT, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert reason(ev) == "INVALID_SOURCE_IP"


# (test-run refuses less than a whole IPv4 header after Ethernet: 34 bytes)
@pytest.mark.parametrize(("ihl", "cut"), [(4, None), (5, 14 + 20 + 8)],
                         ids=["ihl-below-5", "short-tcp"])
def test_malformed_packets_are_dropped_with_a_reason(nd: Netdev, ihl: int, cut: int | None
                                                     ) -> None:
    external(nd, [LOCAL_BACKEND], local=True)
    whole = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src=CLIENT, dst=NODE, ihl=ihl)
                  / TCP(sport=40008, dport=NODE_PORT, flags="S"))
    out = nd.arrive(whole[:cut])
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert ev.type == DROP and ev.drop_reason != 0
