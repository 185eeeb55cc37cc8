"""The kernel fails closed (issue 9 item 9), through BPF_PROG_TEST_RUN with Scapy packets:
non-IPv4 frames are dropped with a reason (ARP excepted, with anti-spoofing) and IPv4
fragments follow their first fragment. ICMP errors and hairpin: test_icmp_hairpin.py."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP, defragment, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from agent.datapath import drop_reasons, maps
from agent.datapath.cdefs import LIB_DIR, enum_values
from agent.datapath.policy_ports import PortRule

from .test_datapath import (
    BACKEND,
    BACKEND_ID,
    CLIENT,
    CLIENT_ID,
    INGRESS,
    OTHER,
    TC_ACT_OK,
    TC_ACT_SHOT,
    UDP_P,
    VIP,
    Runner,
    checksums_valid,
    client_endpoint,
    reason,
    service,
)

pytestmark = pytest.mark.bpf

CONFIG = enum_values(LIB_DIR / "common.h", "tulle_config")
MAC_POD, MAC_NODE = "02:00:00:00:00:01", "02:00:00:00:00:02"


@pytest.fixture
def dp(runner: Runner) -> Iterator[Runner]:
    runner.reset()
    runner.dp.table("frag_v1").clear()
    yield runner
    set_config(runner, "TULLE_CFG_DROP_FRAGMENTS", 0)


def set_config(r: Runner, key: str, value: int) -> None:
    config = r.dp.table("tulle_config_v1")
    config[config.Key(CONFIG[key])] = config.Leaf(value)


def dropped(r: Runner, name: str) -> int:
    """Packets tulle_drops_v1 has counted under the drop reason ``name``, all CPUs."""
    table = r.dp.table("tulle_drops_v1")
    return sum(s.packets for s in table.getvalue(table.Key(drop_reasons.code(name))))


def eth(dst: str = MAC_NODE, src: str = MAC_POD) -> Any:
    return Ether(src=src, dst=dst)


# -- non-IPv4 frames -------------------------------------------------------------------------

POD6, PEER6 = "fd00::1:2", "fd00::2:3"

IPV6_FRAMES = {
    "tcp": eth() / IPv6(src=POD6, dst=PEER6) / TCP(sport=1000, dport=80, flags="S"),
    "udp": eth() / IPv6(src=POD6, dst=PEER6) / UDP(sport=1000, dport=53) / b"q",
    "icmpv6": eth() / IPv6(src=POD6, dst=PEER6) / ICMPv6EchoRequest(),
    "link-local": eth() / IPv6(src="fe80::1", dst="fe80::2") / UDP(sport=1, dport=2),
    "ndp": eth("33:33:ff:00:00:02") / IPv6(src="fe80::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="fe80::2"),
}


@pytest.mark.parametrize("kind", sorted(IPV6_FRAMES))
def test_ipv6_from_a_pod_is_dropped_counted_and_recorded(dp: Runner, kind: str) -> None:
    client_endpoint(dp)
    before = dropped(dp, "UNSUPPORTED_L3_PROTOCOL")
    out = dp.from_pod(IPV6_FRAMES[kind])
    assert out.verdict == TC_ACT_SHOT
    assert dropped(dp, "UNSUPPORTED_L3_PROTOCOL") == before + 1
    (ev,) = out.events
    assert ev.verdict == 2 and reason(ev) == "UNSUPPORTED_L3_PROTOCOL"
    assert ev.src_identity == CLIENT_ID and ev.drop_line > 0


@pytest.mark.parametrize("kind", sorted(IPV6_FRAMES))
def test_ipv6_to_a_pod_is_dropped(dp: Runner, kind: str) -> None:
    client_endpoint(dp)
    frame = IPV6_FRAMES[kind]
    back = eth(MAC_POD, MAC_NODE) / IPv6(src=frame[IPv6].dst, dst=frame[IPv6].src) / frame[IPv6].payload
    out = dp.to_pod(back)
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "UNSUPPORTED_L3_PROTOCOL"
    assert out.events[0].dst_identity == CLIENT_ID


def test_other_ethertypes_are_dropped_both_ways(dp: Runner) -> None:
    client_endpoint(dp)
    lldp = Ether(src=MAC_POD, dst="01:80:c2:00:00:0e", type=0x88CC) / (b"\x02\x07" + b"\x00" * 40)
    assert dp.from_pod(lldp).verdict == TC_ACT_SHOT
    assert dp.to_pod(lldp).verdict == TC_ACT_SHOT


def test_non_ipv4_from_an_unknown_endpoint_is_dropped(dp: Runner) -> None:
    frame = eth("ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=CLIENT, pdst="10.244.1.1")
    out = dp.from_pod(frame)
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "UNKNOWN_SENDER"


def arp(op: int, psrc: str, pdst: str) -> Any:
    return eth("ff:ff:ff:ff:ff:ff") / ARP(op=op, hwsrc=MAC_POD, psrc=psrc, pdst=pdst)


def test_arp_with_the_pods_own_sender_passes_untouched(dp: Runner) -> None:
    client_endpoint(dp)
    for frame in (arp(1, CLIENT, "10.244.1.1"), arp(2, CLIENT, "10.244.1.1"),
                  arp(1, "0.0.0.0", CLIENT)):  # an RFC 5227 probe claims nothing
        out = dp.from_pod(frame)
        assert out.verdict == TC_ACT_OK and bytes(out.packet) == bytes(frame) and out.events == []


@pytest.mark.parametrize("frame", [
    arp(1, OTHER, "10.244.1.1"),   # a request claiming another pod's address
    arp(2, OTHER, "10.244.1.1"),   # an unsolicited reply for it
    arp(2, OTHER, OTHER),          # gratuitous ARP for a foreign address
    arp(1, "10.244.1.1", "10.244.1.1"),  # gratuitous ARP for the node's gateway address
    arp(2, "0.0.0.0", "10.244.1.1"),  # a "probe" must be a request
], ids=["request", "reply", "gratuitous", "gateway", "reply-from-0"])
def test_arp_claiming_another_address_is_dropped(dp: Runner, frame: Any) -> None:
    client_endpoint(dp)
    out = dp.from_pod(frame)
    assert out.verdict == TC_ACT_SHOT
    (ev,) = out.events
    assert reason(ev) == "INVALID_SOURCE_IP" and ev.src_identity == CLIENT_ID
    assert maps.from_be32(ev.saddr) == ipaddress.IPv4Address(frame[ARP].psrc)


def test_malformed_arp_is_dropped(dp: Runner) -> None:
    client_endpoint(dp)
    truncated = bytes(arp(1, CLIENT, "10.244.1.1"))[:14 + 20]
    not_ipv4 = arp(1, CLIENT, "10.244.1.1")
    not_ipv4[ARP].ptype = 0x86DD
    for frame in (Ether(truncated), not_ipv4):
        out = dp.from_pod(frame)
        assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "INVALID_PACKET_DROPPED"


def test_arp_from_the_node_reaches_the_pod(dp: Runner) -> None:
    client_endpoint(dp)
    frame = Ether(src=MAC_NODE, dst=MAC_POD) / ARP(op=2, hwsrc=MAC_NODE, psrc="10.244.1.1", pdst=CLIENT)
    assert dp.to_pod(frame).verdict == TC_ACT_OK


# -- IPv4 fragments --------------------------------------------------------------------------

def udp_datagram(src: str, dst: str, sport: int, dport: int, size: int = 4000, ip_id: int = 4242) -> Any:
    return IP(src=src, dst=dst, id=ip_id) / UDP(sport=sport, dport=dport) / (bytes(range(256)) * 16)[:size]


def framed(frags: list[Any]) -> list[Any]:
    return [Ether(src=MAC_POD, dst=MAC_NODE) / f for f in frags]


def reassembled(outs: list[Any]) -> Any:
    (whole,) = defragment([o.packet[IP] for o in outs])
    return IP(bytes(whole))


def udp_checksum_valid(ip: Any) -> bool:
    fresh = IP(bytes(ip))
    del fresh[UDP].chksum
    return bool(IP(bytes(fresh))[UDP].chksum == ip[UDP].chksum)


def test_fragments_to_a_cluster_ip_all_reach_the_chosen_backend(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 5353)], proto=UDP_P)
    datagram = udp_datagram(CLIENT, VIP, 5000, 80)
    frags = framed(fragment(datagram, fragsize=1480))
    assert len(frags) == 3
    outs = [dp.from_pod(f) for f in frags]
    assert [o.verdict for o in outs] == [TC_ACT_OK] * 3
    assert {o.packet[IP].dst for o in outs} == {BACKEND}
    assert all(checksums_valid(o.packet) for o in outs[1:])  # IP header checksum of each piece
    whole = reassembled(outs)
    assert (whole.dst, whole[UDP].dport, whole[UDP].sport) == (BACKEND, 5353, 5000)
    assert bytes(whole[UDP].payload) == bytes(datagram[UDP].payload)
    assert udp_checksum_valid(whole)
    assert [e.type for o in outs for e in o.events] == [1]  # one NEW flow, then the connection


def test_reply_fragments_are_reverse_translated_to_the_vip(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 5353)], proto=UDP_P)
    for f in framed(fragment(udp_datagram(CLIENT, VIP, 5001, 80), fragsize=1480)):
        dp.from_pod(f)
    reply = udp_datagram(BACKEND, CLIENT, 5353, 5001, ip_id=777)
    outs = [dp.to_pod(f) for f in framed(fragment(reply, fragsize=1480))]
    assert [o.verdict for o in outs] == [TC_ACT_OK] * 3
    assert {o.packet[IP].src for o in outs} == {VIP}
    whole = reassembled(outs)
    assert (whole.src, whole[UDP].sport, whole[UDP].dport) == (VIP, 80, 5001)
    assert udp_checksum_valid(whole)


def test_a_later_fragment_without_its_first_is_dropped(dp: Runner) -> None:
    client_endpoint(dp)
    first, middle, last = framed(fragment(udp_datagram(CLIENT, OTHER, 5002, 53), fragsize=1480))
    for piece in (middle, last):
        out = dp.from_pod(piece)
        assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "FRAG_NOT_FOUND"
    assert dp.to_pod(Ether(src=MAC_NODE, dst=MAC_POD) / IP(bytes(middle[IP]))).verdict == TC_ACT_SHOT
    # Another datagram's id never lends its ports.
    dp.from_pod(first)
    stray = udp_datagram(CLIENT, OTHER, 5002, 53, ip_id=4243)
    out = dp.from_pod(framed(fragment(stray, fragsize=1480))[1])
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "FRAG_NOT_FOUND"


def test_later_fragments_share_the_first_fragments_policy_verdict(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), BACKEND_ID, INGRESS,
                           [PortRule(UDP_P, 8080, 8080)])
    allowed = framed(fragment(udp_datagram(BACKEND, CLIENT, 6000, 8080, ip_id=1), fragsize=1480))
    denied = framed(fragment(udp_datagram(BACKEND, CLIENT, 6001, 9090, ip_id=2), fragsize=1480))
    assert [dp.to_pod(f).verdict for f in allowed] == [TC_ACT_OK] * 3
    outs = [dp.to_pod(f) for f in denied]
    assert [o.verdict for o in outs] == [TC_ACT_SHOT] * 3
    assert {reason(o.events[0]) for o in outs} == {"POLICY_DENIED"}


def test_the_operator_switch_still_drops_every_fragment(dp: Runner) -> None:
    client_endpoint(dp)
    set_config(dp, "TULLE_CFG_DROP_FRAGMENTS", 1)
    for f in framed(fragment(udp_datagram(CLIENT, OTHER, 5003, 53), fragsize=1480)):
        out = dp.from_pod(f)
        assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "IP_FRAGMENTATION_NOT_SUPPORTED"
