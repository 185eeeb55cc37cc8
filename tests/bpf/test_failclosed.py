"""The kernel fails closed (issue 9 item 9), through BPF_PROG_TEST_RUN with Scapy packets:
non-IPv4 frames are dropped with a reason (ARP excepted, with anti-spoofing), IPv4
fragments follow their first fragment, ICMP errors are related to their connection, and a
pod reaches itself through its own Service (hairpin)."""

from __future__ import annotations

import ipaddress
import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, defragment, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import checksum

from agent.datapath import drop_reasons, maps
from agent.datapath.cdefs import LIB_DIR, enum_values
from agent.datapath.policy_ports import PortRule
from agent.datapath.programs import load_datapath, pin_dir_for

from .test_datapath import (
    BACKEND,
    BACKEND_ID,
    CLIENT,
    CLIENT_ID,
    EGRESS,
    INGRESS,
    OTHER,
    TC_ACT_OK,
    TC_ACT_SHOT,
    TCP_P,
    UDP_P,
    VIP,
    Runner,
    checksums_valid,
    client_endpoint,
    pkt,
    reason,
    service,
)

pytestmark = pytest.mark.bpf

CONFIG = enum_values(LIB_DIR / "common.h", "tulle_config")
MAC_POD, MAC_NODE = "02:00:00:00:00:01", "02:00:00:00:00:02"


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    pin = pin_dir_for("test" + secrets.token_hex(3), "n1")
    dp = load_datapath(pin)
    try:
        yield Runner(dp)
    finally:
        dp.close()
        shutil.rmtree(pin.parent, ignore_errors=True)


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




# -- ICMP errors -----------------------------------------------------------------------------

ROUTER = "10.240.0.1"  # a hop on the path: not translated, never a pod


def quote(src: str, dst: str, l4: Any) -> bytes:
    """What an ICMP error carries: the offending packet's IP header and its first bytes."""
    return bytes(IP(src=src, dst=dst) / l4 / (b"x" * 1400))[:20 + 28]


def icmp_error(src: str, dst: str, quoted: bytes, type_: int = 3, code: int = 4) -> Any:
    icmp = ICMP(type=type_, code=code, nexthopmtu=1400) if type_ == 3 else ICMP(type=type_, code=code)
    return pkt(src, dst, icmp / quoted)


def icmp_valid(p: Any) -> bool:
    raw = bytes(p[ICMP])
    fresh = ICMP(raw)
    del fresh.chksum
    quoted_ip = raw[8:28]
    return bool(ICMP(bytes(fresh)).chksum == p[ICMP].chksum and checksum(quoted_ip) == 0)


def quoted(p: Any) -> tuple[str, str, int, int]:
    ip = IP(bytes(p[ICMP])[8:])
    return ip.src, ip.dst, int.from_bytes(bytes(ip)[20:22], "big"), int.from_bytes(bytes(ip)[22:24], "big")


def open_to_vip(r: Runner, sport: int, proto: int = TCP_P) -> None:
    service(r, [(BACKEND, 8080)], proto=proto)
    l4 = TCP(sport=sport, dport=80, flags="S") if proto == TCP_P else UDP(sport=sport, dport=80)
    assert r.from_pod(pkt(CLIENT, VIP, l4)).verdict == TC_ACT_OK


@pytest.mark.parametrize("type_,code", [(3, 4), (3, 3), (11, 0)], ids=["frag-needed", "port-unreachable", "ttl"])
def test_an_error_about_the_pods_connection_passes_ingress_policy_with_the_vip_restored(
        dp: Runner, type_: int, code: int) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)  # nothing allowed in, not even ICMP
    open_to_vip(dp, 51000)
    err = icmp_error(ROUTER, CLIENT, quote(CLIENT, BACKEND, TCP(sport=51000, dport=8080, flags="A")), type_, code)
    out = dp.to_pod(err)
    assert out.verdict == TC_ACT_OK and out.events == []
    assert quoted(out.packet) == (CLIENT, VIP, 51000, 80)
    assert out.packet[IP].src == ROUTER  # a router on the path keeps its own address
    assert icmp_valid(out.packet) and checksums_valid(out.packet)
    if type_ == 3 and code == 4:
        assert out.packet[ICMP].nexthopmtu == 1400


def test_an_error_from_the_backend_itself_comes_from_the_vip(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    open_to_vip(dp, 51001, proto=UDP_P)
    err = icmp_error(BACKEND, CLIENT, quote(CLIENT, BACKEND, UDP(sport=51001, dport=8080)), 3, 3)
    out = dp.to_pod(err)
    assert out.verdict == TC_ACT_OK
    assert out.packet[IP].src == VIP and quoted(out.packet) == (CLIENT, VIP, 51001, 80)
    assert icmp_valid(out.packet) and checksums_valid(out.packet)


def test_an_error_about_a_reply_of_an_accepted_connection_passes(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), BACKEND_ID, INGRESS, [PortRule(TCP_P, 8080, 8080)])
    assert dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=52000, dport=8080, flags="S"))).verdict == TC_ACT_OK
    err = icmp_error(ROUTER, CLIENT, quote(CLIENT, BACKEND, TCP(sport=8080, dport=52000, flags="SA")))
    out = dp.to_pod(err)
    assert out.verdict == TC_ACT_OK and bytes(out.packet) == bytes(err)


@pytest.mark.parametrize("about", ["no-connection", "other-port", "other-pod"])
def test_an_unrelated_error_toward_a_pod_under_ingress_policy_is_dropped(dp: Runner, about: str) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    open_to_vip(dp, 51002)
    quotes = {"no-connection": quote(CLIENT, OTHER, TCP(sport=51002, dport=8080)),
              "other-port": quote(CLIENT, BACKEND, TCP(sport=51003, dport=8080)),
              "other-pod": quote(OTHER, BACKEND, TCP(sport=51002, dport=8080))}
    out = dp.to_pod(icmp_error(ROUTER, CLIENT, quotes[about]))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "POLICY_DENIED"


def test_a_truncated_quote_is_not_related(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    open_to_vip(dp, 51004)
    err = icmp_error(ROUTER, CLIENT, quote(CLIENT, BACKEND, TCP(sport=51004, dport=8080))[:22])
    assert dp.to_pod(err).verdict == TC_ACT_SHOT


def test_the_pods_own_error_about_an_accepted_connection_passes_egress_policy(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_EGRESS_ENFORCED)  # nothing allowed out
    assert dp.to_pod(pkt(OTHER, CLIENT, UDP(sport=53000, dport=8080))).verdict == TC_ACT_OK
    err = icmp_error(CLIENT, OTHER, quote(OTHER, CLIENT, UDP(sport=53000, dport=8080)), 3, 3)
    assert dp.from_pod(err).verdict == TC_ACT_OK
    unrelated = icmp_error(CLIENT, OTHER, quote(OTHER, CLIENT, UDP(sport=53001, dport=8080)), 3, 3)
    out = dp.from_pod(unrelated)
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "POLICY_DENIED"
    # A related quote sent to someone other than the quoted sender opens nothing.
    elsewhere = icmp_error(CLIENT, BACKEND, quote(OTHER, CLIENT, UDP(sport=53000, dport=8080)), 3, 3)
    out = dp.from_pod(elsewhere)
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "POLICY_DENIED"


def test_the_pods_error_about_a_reply_from_a_vip_goes_to_the_backend(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_EGRESS_ENFORCED)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), BACKEND_ID, EGRESS, [PortRule(UDP_P, 8080, 8080)])
    open_to_vip(dp, 54000, proto=UDP_P)
    # The reply reached the pod reverse-NATed (from VIP:80); the pod's socket is gone.
    err = icmp_error(CLIENT, VIP, quote(VIP, CLIENT, UDP(sport=80, dport=54000)), 3, 3)
    out = dp.from_pod(err)
    assert out.verdict == TC_ACT_OK
    assert out.packet[IP].dst == BACKEND and quoted(out.packet) == (BACKEND, CLIENT, 8080, 54000)
    assert icmp_valid(out.packet) and checksums_valid(out.packet)


# -- hairpin ---------------------------------------------------------------------------------

HAIRPIN = "169.254.42.1"


def test_a_pod_reaches_itself_through_its_own_service(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED | maps.EP_F_EGRESS_ENFORCED)
    me = ipaddress.IPv4Address(CLIENT)
    maps.write_policy_rule(dp.dp, me, CLIENT_ID, INGRESS, [PortRule(TCP_P, 8080, 8080)])
    maps.write_policy_rule(dp.dp, me, CLIENT_ID, EGRESS, [PortRule(TCP_P, 8080, 8080)])
    service(dp, [(CLIENT, 8080)])
    leg1 = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=55000, dport=80, flags="S")))
    assert leg1.verdict == TC_ACT_OK
    assert (leg1.packet[IP].src, leg1.packet[IP].dst, leg1.packet[TCP].dport) == (HAIRPIN, CLIENT, 8080)
    assert checksums_valid(leg1.packet)
    # The node routes it back down the same veth: the pod accepts it, judged as itself.
    in1 = dp.to_pod(leg1.packet)
    assert in1.verdict == TC_ACT_OK and bytes(in1.packet) == bytes(leg1.packet)
    (new,) = in1.events
    assert new.type == 1 and (new.src_identity, new.dst_identity) == (CLIENT_ID, CLIENT_ID)
    # The answer goes back to the pod's own address, then reaches it from the VIP.
    leg2 = dp.from_pod(pkt(CLIENT, HAIRPIN, TCP(sport=8080, dport=55000, flags="SA")))
    assert leg2.verdict == TC_ACT_OK
    assert (leg2.packet[IP].src, leg2.packet[IP].dst) == (CLIENT, CLIENT) and checksums_valid(leg2.packet)
    in2 = dp.to_pod(leg2.packet)
    assert in2.verdict == TC_ACT_OK
    assert (in2.packet[IP].src, in2.packet[TCP].sport, in2.packet[IP].dst, in2.packet[TCP].dport) == (
        VIP, 80, CLIENT, 55000)
    assert checksums_valid(in2.packet)
    # Later packets of the connection take the same legs.
    more = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=55000, dport=80, flags="A") / b"GET /"))
    assert (more.packet[IP].src, more.packet[IP].dst) == (HAIRPIN, CLIENT) and checksums_valid(more.packet)
    assert dp.to_pod(more.packet).verdict == TC_ACT_OK


def test_the_hairpin_address_grants_nothing_to_others(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), CLIENT_ID, INGRESS, [PortRule(TCP_P, 8080, 8080)])
    forged = dp.to_pod(pkt(HAIRPIN, CLIENT, TCP(sport=55001, dport=8080, flags="S")))
    assert forged.verdict == TC_ACT_SHOT and reason(forged.events[0]) == "POLICY_DENIED"
    # Nor does a reply to the hairpin address un-NAT anything without its connection.
    stray = dp.from_pod(pkt(CLIENT, HAIRPIN, TCP(sport=8080, dport=55001, flags="SA")))
    assert stray.packet[IP].dst == HAIRPIN
