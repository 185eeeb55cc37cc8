"""The kernel fails closed (issue 9 item 9), through BPF_PROG_TEST_RUN with Scapy packets:
ICMP errors are related to their connection (and translated with it), and a pod reaches
itself through its own Service (hairpin)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.utils import checksum

from agent.datapath import maps
from agent.datapath.flowevents import EventDecoder
from agent.datapath.policy_ports import PortRule

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
    # Hubble's IP.source_xlated: the pod's source became the hairpin address on the way out,
    # and its answer reached it from the VIP.
    decoder = EventDecoder("node-1")
    out_new = decoder.decode(bytes(leg1.events[0]))
    reply = decoder.decode(bytes(in2.events[0]))
    assert out_new.ip is not None and reply.ip is not None
    assert (out_new.ip.source, out_new.ip.source_xlated) == (CLIENT, HAIRPIN)
    assert (reply.ip.source, reply.ip.source_xlated, reply.is_reply) == (CLIENT, VIP, True)
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
