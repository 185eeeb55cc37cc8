"""from_pod / to_pod through BPF_PROG_TEST_RUN: translation, policy, spoofing, bad packets.

Each case asserts the verdict, the bytes that come out (checksums recomputed by Scapy must
match), and the flow event the program emitted.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import threading
import time as _time
from dataclasses import dataclass
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from agent.datapath import drop_reasons, maps
from agent.datapath.cdefs import LIB_DIR
from agent.datapath.controller import DatapathController
from agent.datapath.eventreader import EventReader
from agent.datapath.flowevents import POLICY_MATCHED, EventDecoder, FlowEventLayout
from agent.datapath.maglev import maglev_table
from agent.datapath.policy_names import PolicyNames
from agent.datapath.policy_ports import PortRule
from agent.datapath.programs import Datapath
from agent.datapath.testrun import SkBuff, test_run
from agent.flows.enrich import EndpointIndex
from agent.flows.flow import Flow, Verdict
from agent.flows.ingest import FlowIngest
from agent.flows.store import FlowRing

pytestmark = pytest.mark.bpf

TC_ACT_OK, TC_ACT_SHOT = 0, 2
IFINDEX = 1  # the test runs need a real device: lo stands in for the pod's veth
CLIENT, BACKEND, OTHER = "10.244.1.2", "10.244.2.3", "10.244.2.9"
VIP = "10.96.0.50"
CLIENT_ID, BACKEND_ID, OTHER_ID = 300, 400, 500
TCP_P, UDP_P = 6, 17
INGRESS, EGRESS = 1, 2


@dataclass
class Outcome:
    verdict: int
    packet: Any
    events: list[Any]


class Runner:
    def __init__(self, dp: Datapath) -> None:
        self.dp = dp
        self.events: list[Any] = []
        ring = dp.table("flow_events_v1")
        ring.open_ring_buffer(self._on_event)

    def _on_event(self, _ctx: Any, data: Any, _size: int) -> None:
        self.events.append(self.dp.event(data))

    def reset(self) -> None:
        for name in ("endpoints_v1", "ipcache_v1", "ct_v1", "lb_services_v1", "lb_backends_v1", "l7_orig_dst_v1",
                     "lb_maglev_v1", "lb_affinity_v1", "policy_v1", "policy_cidr_v1", "mtls_v1",
                     "authz_v1"):
            self.dp.table(name).clear()
        self.dp.bpf.ring_buffer_consume()
        self.events.clear()

    def run(self, prog_fd: int, pkt: Any) -> Outcome:
        ctx = SkBuff()
        ctx.ifindex = IFINDEX
        self.events.clear()
        result = test_run(prog_fd, bytes(pkt), ctx=ctx)
        self.dp.bpf.ring_buffer_consume()
        return Outcome(result.retval, Ether(result.data_out), list(self.events))

    def from_pod(self, pkt: Any) -> Outcome:
        return self.run(self.dp.from_pod_fd, pkt)

    def to_pod(self, pkt: Any) -> Outcome:
        return self.run(self.dp.to_pod_fd, pkt)


def client_endpoint(r: Runner, flags: int = 0, ip: str = CLIENT, identity: int = CLIENT_ID) -> None:
    maps.write_endpoint(r.dp, IFINDEX, ipaddress.IPv4Address(ip), identity, flags)
    maps.write_ipcache(r.dp, {ipaddress.IPv4Address(CLIENT): CLIENT_ID,
                             ipaddress.IPv4Address(BACKEND): BACKEND_ID,
                             ipaddress.IPv4Address(OTHER): OTHER_ID})


def service(r: Runner, backends: list[tuple[str, int]], proto: int = TCP_P, affinity: int = 0) -> None:
    bs = [(ipaddress.IPv4Address(ip), port) for ip, port in backends]
    table = maglev_table([f"{ip}:{port}" for ip, port in bs]) if bs else ()
    maps.write_service(r.dp, ipaddress.IPv4Address(VIP), 80, proto, bs, table, affinity, None)


def pkt(src: str, dst: str, l4: Any, **ip: Any) -> Any:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst, **ip) / l4


def checksums_valid(p: Any) -> bool:
    again = Ether(bytes(p))
    ip = again[IP]
    fresh = IP(bytes(ip))
    del fresh.chksum
    l4 = fresh.payload
    if hasattr(l4, "chksum"):
        del l4.chksum
    rebuilt = IP(bytes(fresh))
    return rebuilt.chksum == ip.chksum and (
        not hasattr(ip.payload, "chksum") or rebuilt.payload.chksum == ip.payload.chksum)


def reason(ev: Any) -> str:
    return drop_reasons.by_code(ev.drop_reason).name


# -- translation ---------------------------------------------------------------------------

def test_dnat_to_the_backend_with_valid_checksums(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=40000, dport=80, flags="S")))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].dst, out.packet[TCP].dport) == (BACKEND, 8080)
    assert out.packet[IP].src == CLIENT and out.packet[TCP].sport == 40000
    assert checksums_valid(out.packet)
    (ev,) = out.events
    assert ev.type == 1 and ev.verdict == 6  # NEW, TRANSLATED
    assert maps.from_be32(ev.orig_daddr) == ipaddress.IPv4Address(VIP)
    assert maps.from_be16(ev.orig_dport) == 80
    assert (ev.src_identity, ev.dst_identity) == (CLIENT_ID, BACKEND_ID)


def test_reply_is_reverse_translated_to_the_vip(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    dp.from_pod(pkt(CLIENT, VIP, TCP(sport=40001, dport=80, flags="S")))
    out = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=40001, flags="SA")))
    assert out.verdict == TC_ACT_OK
    assert (out.packet[IP].src, out.packet[TCP].sport) == (VIP, 80)
    assert checksums_valid(out.packet)


def test_first_reply_through_a_vip_is_a_reply_flow_with_source_xlated(dp: Runner) -> None:
    """Hubble's IP.source_xlated: the reply left the backend (IP.source) and reached the
    client from the VIP. One such flow per translated connection, none for direct ones."""
    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    dp.from_pod(pkt(CLIENT, VIP, TCP(sport=40002, dport=80, flags="S")))
    first = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=40002, flags="SA")))
    again = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=40002, flags="A")))
    (ev,) = first.events
    assert again.events == []
    flow = EventDecoder("node-1").decode(bytes(ev))
    assert flow.ip is not None
    assert (flow.ip.source, flow.ip.source_xlated, flow.ip.destination) == (BACKEND, VIP, CLIENT)
    assert flow.is_reply is True and flow.verdict == Verdict.TRANSLATED
    assert (flow.l4.source_port, flow.l4.destination_port) == (8080, 40002)  # type: ignore[union-attr]
    assert flow.l4.flags.names() == ["SYN", "ACK"]  # type: ignore[union-attr]
    assert (flow.source.identity, flow.destination.identity) == (BACKEND_ID, CLIENT_ID)  # type: ignore[union-attr]
    # A connection straight to the backend has no translation, hence no reply flow.
    dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=40003, dport=8080, flags="S")))
    direct = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=40003, flags="SA")))
    assert direct.verdict == TC_ACT_OK and direct.events == []


def test_udp_translation_keeps_a_valid_checksum(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 5353)], proto=UDP_P)
    out = dp.from_pod(pkt(CLIENT, VIP, UDP(sport=5000, dport=80) / b"hello"))
    assert (out.packet[IP].dst, out.packet[UDP].dport) == (BACKEND, 5353)
    assert checksums_valid(out.packet)


def test_packets_of_one_connection_keep_their_backend(dp: Runner) -> None:
    client_endpoint(dp)
    backends = [(f"10.244.2.{i}", 8080) for i in range(10, 14)]
    service(dp, backends)
    first = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=41000, dport=80, flags="S")))
    chosen = first.packet[IP].dst
    for _ in range(5):
        again = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=41000, dport=80, flags="A")))
        assert again.packet[IP].dst == chosen


def test_new_connections_spread_over_backends(dp: Runner) -> None:
    client_endpoint(dp)
    backends = [(f"10.244.2.{i}", 8080) for i in range(10, 13)]
    service(dp, backends)
    seen: dict[str, int] = {}
    for sport in range(42000, 42300):
        out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=sport, dport=80, flags="S")))
        seen[out.packet[IP].dst] = seen.get(out.packet[IP].dst, 0) + 1
    assert set(seen) == {ip for ip, _ in backends}
    assert all(70 <= n <= 130 for n in seen.values()), seen


def test_client_ip_affinity_sticks_across_source_ports(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(f"10.244.2.{i}", 8080) for i in range(10, 14)], affinity=60)
    chosen = {dp.from_pod(pkt(CLIENT, VIP, TCP(sport=s, dport=80, flags="S"))).packet[IP].dst
              for s in range(43000, 43020)}
    assert len(chosen) == 1


def test_service_without_endpoints_records_a_drop_and_lets_the_route_reject(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [])
    out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=40002, dport=80, flags="S")))
    assert out.verdict == TC_ACT_OK  # the node's unreachable route answers with ICMP
    assert out.packet[IP].dst == VIP
    (ev,) = out.events
    assert ev.verdict == 2 and reason(ev) == "SERVICE_BACKEND_NOT_FOUND"


# -- policy --------------------------------------------------------------------------------

def test_ingress_policy_allows_by_identity_and_port_only(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    rule = PortRule(TCP_P, 8080, 8080)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), BACKEND_ID, INGRESS, [rule])
    ok = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=50000, dport=8080, flags="S")))
    assert ok.verdict == TC_ACT_OK and ok.events[0].verdict == 1
    wrong_port = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=50001, dport=9090, flags="S")))
    assert wrong_port.verdict == TC_ACT_SHOT and reason(wrong_port.events[0]) == "POLICY_DENIED"
    wrong_peer = dp.to_pod(pkt(OTHER, CLIENT, TCP(sport=50002, dport=8080, flags="S")))
    assert wrong_peer.verdict == TC_ACT_SHOT
    assert (wrong_peer.events[0].src_identity, wrong_peer.events[0].dst_identity) == (OTHER_ID, CLIENT_ID)


def test_replies_of_allowed_connections_pass_egress_deny(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED | maps.EP_F_EGRESS_ENFORCED)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), BACKEND_ID, INGRESS,
                           [PortRule(TCP_P, 8080, 8080)])
    assert dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=50010, dport=8080, flags="S"))).verdict == TC_ACT_OK
    reply = dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=8080, dport=50010, flags="SA")))
    assert reply.verdict == TC_ACT_OK
    fresh = dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=50011, dport=8080, flags="S")))
    assert fresh.verdict == TC_ACT_SHOT and reason(fresh.events[0]) == "POLICY_DENIED"


def test_cidr_rule_with_except(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_EGRESS_ENFORCED)
    ep = ipaddress.IPv4Address(CLIENT)
    any_port = [PortRule(0, 0, 65535)]
    maps.write_cidr_rule(dp.dp, ep, EGRESS, ipaddress.IPv4Network("10.240.0.0/24"), False, any_port)
    maps.write_cidr_rule(dp.dp, ep, EGRESS, ipaddress.IPv4Network("10.240.0.12/32"), True, [])
    allowed = dp.from_pod(pkt(CLIENT, "10.240.0.11", TCP(sport=1, dport=80, flags="S")))
    excepted = dp.from_pod(pkt(CLIENT, "10.240.0.12", TCP(sport=2, dport=80, flags="S")))
    outside = dp.from_pod(pkt(CLIENT, "10.241.0.1", TCP(sport=3, dport=80, flags="S")))
    assert (allowed.verdict, excepted.verdict, outside.verdict) == (TC_ACT_OK, TC_ACT_SHOT, TC_ACT_SHOT)


def test_new_event_names_the_policies_whose_rule_allowed_it(dp: Runner) -> None:
    """The matched rule's policy set id rides the NEW event; the agent names the policies
    of that set whose own rules match the port (not every policy of the map value)."""
    names = PolicyNames()
    pid = names.learn([("prod/allow-web", PortRule(TCP_P, 8080, 8080)),
                       ("prod/allow-metrics", PortRule(TCP_P, 9090, 9090))])
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED | maps.EP_F_EGRESS_ENFORCED)
    ep = ipaddress.IPv4Address(CLIENT)
    maps.write_policy_rule(dp.dp, ep, BACKEND_ID, INGRESS,
                           [PortRule(TCP_P, 8080, 8080, pid), PortRule(TCP_P, 9090, 9090, pid)])
    cidr_pid = names.learn([("prod/to-fabric", PortRule(0, 0, 65535))])
    maps.write_cidr_rule(dp.dp, ep, EGRESS, ipaddress.IPv4Network("10.240.0.0/24"), False,
                         [PortRule(0, 0, 65535, cidr_pid)])
    decoder = EventDecoder("node-1", names)

    web = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=50020, dport=8080, flags="S")))
    metrics = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=50021, dport=9090, flags="S")))
    out = dp.from_pod(pkt(CLIENT, "10.240.0.11", TCP(sport=50022, dport=443, flags="S")))
    assert [o.verdict for o in (web, metrics, out)] == [TC_ACT_OK] * 3
    assert web.events[0].policy == POLICY_MATCHED | pid
    flows = [decoder.decode(bytes(o.events[0])) for o in (web, metrics, out)]
    assert [[p.name for p in f.ingress_allowed_by] for f in flows] == [
        ["allow-web"], ["allow-metrics"], []]
    assert [p.name for p in flows[2].egress_allowed_by] == ["to-fabric"]
    assert flows[0].ingress_allowed_by[0].namespace == "prod"
    assert flows[0].ingress_allowed_by[0].kind == "NetworkPolicy"


def test_unenforced_connection_carries_no_policy(dp: Runner) -> None:
    client_endpoint(dp)
    out = dp.to_pod(pkt(OTHER, CLIENT, TCP(sport=2, dport=1234, flags="S")))
    assert out.verdict == TC_ACT_OK and out.events[0].policy == 0


def test_unenforced_endpoint_allows_everything(dp: Runner) -> None:
    client_endpoint(dp)
    assert dp.to_pod(pkt(OTHER, CLIENT, TCP(sport=1, dport=1234, flags="S"))).verdict == TC_ACT_OK


# -- hostile and odd packets --------------------------------------------------------------

def test_spoofed_source_is_dropped(dp: Runner) -> None:
    client_endpoint(dp)
    out = dp.from_pod(pkt("10.244.1.99", OTHER, TCP(sport=1, dport=80, flags="S")))
    assert out.verdict == TC_ACT_SHOT
    assert reason(out.events[0]) == "INVALID_SOURCE_IP"
    assert out.events[0].drop_line > 0


def test_unknown_sender_is_dropped(dp: Runner) -> None:
    out = dp.from_pod(pkt(CLIENT, OTHER, TCP(sport=1, dport=80, flags="S")))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "UNKNOWN_SENDER"


def test_ip_options_are_skipped_and_translation_still_works(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=40100, dport=80, flags="S"),
                          options=b"\x01\x01\x01\x00"))
    assert out.verdict == TC_ACT_OK
    assert out.packet[IP].ihl == 6 and out.packet[TCP].dport == 8080
    assert checksums_valid(out.packet)


def test_truncated_tcp_header_is_dropped(dp: Runner) -> None:
    client_endpoint(dp)
    raw = bytes(pkt(CLIENT, OTHER, TCP(sport=1, dport=80)))[:14 + 20 + 8]
    ip = IP(raw[14:])
    ip.len = 28
    del ip.chksum
    data = raw[:14] + bytes(ip)[:28]
    out = dp.from_pod(Ether(data))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "CT_TRUNCATED_OR_INVALID_HEADER"


def test_bad_ihl_is_dropped(dp: Runner) -> None:
    client_endpoint(dp)
    raw = bytearray(bytes(pkt(CLIENT, OTHER, TCP(sport=1, dport=80))))
    raw[14] = 0x44  # version 4, IHL 4 (< 5)
    out = dp.from_pod(Ether(bytes(raw)))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "INVALID_PACKET_DROPPED"


def test_icmp_is_policed_by_protocol(dp: Runner) -> None:
    client_endpoint(dp, flags=maps.EP_F_INGRESS_ENFORCED)
    maps.write_policy_rule(dp.dp, ipaddress.IPv4Address(CLIENT), 0, INGRESS,
                           [PortRule(TCP_P, 0, 65535)])
    out = dp.to_pod(pkt(OTHER, CLIENT, ICMP()))
    assert out.verdict == TC_ACT_SHOT and reason(out.events[0]) == "POLICY_DENIED"


def test_close_event_carries_counters(dp: Runner) -> None:
    client_endpoint(dp)
    dp.from_pod(pkt(CLIENT, OTHER, TCP(sport=45000, dport=80, flags="S")))
    dp.to_pod(pkt(OTHER, CLIENT, TCP(sport=80, dport=45000, flags="SA")))
    dp.from_pod(pkt(CLIENT, OTHER, TCP(sport=45000, dport=80, flags="A") / (b"x" * 100)))
    dp.from_pod(pkt(CLIENT, OTHER, TCP(sport=45000, dport=80, flags="FA")))
    out = dp.to_pod(pkt(OTHER, CLIENT, TCP(sport=80, dport=45000, flags="FA")))
    (close,) = [e for e in out.events if e.type == 3]
    assert close.packets_fwd == 3 and close.packets_rev == 2
    assert close.bytes_fwd > close.bytes_rev


_ = ctypes  # ctypes structures come from BCC; kept for readers of this module


# -- L7 redirection ------------------------------------------------------------------------

WAYPOINT = ("10.244.1.254", 15001)


def l7_service(r: Runner, backends: list[tuple[str, int]]) -> None:
    bs = [(ipaddress.IPv4Address(ip), port) for ip, port in backends]
    table = maglev_table([f"{ip}:{port}" for ip, port in bs]) if bs else ()
    maps.write_service(r.dp, ipaddress.IPv4Address(VIP), 80, TCP_P, bs, table, 0, None, maps.LB_F_L7)


def test_l7_service_goes_to_the_waypoint_with_its_original_destination(dp: Runner) -> None:
    client_endpoint(dp)
    l7_service(dp, [(BACKEND, 8080)])
    maps.write_waypoint(dp.dp, (ipaddress.IPv4Address(WAYPOINT[0]), WAYPOINT[1]))
    try:
        out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=46000, dport=80, flags="S")))
        assert (out.packet[IP].dst, out.packet[TCP].dport) == WAYPOINT
        assert checksums_valid(out.packet)
        table = dp.dp.table("l7_orig_dst_v1")
        key = table.Key()
        key.client, key.client_port, key.proto = maps.be32(CLIENT), maps.be16(46000), TCP_P
        orig = table[key]
        assert (maps.from_be32(orig.vip), maps.from_be16(orig.vport)) == (ipaddress.IPv4Address(VIP), 80)
        assert orig.client_identity == CLIENT_ID
        # The waypoint's answer reaches the client from the VIP.
        reply = dp.to_pod(pkt(WAYPOINT[0], CLIENT, TCP(sport=WAYPOINT[1], dport=46000, flags="SA")))
        assert (reply.packet[IP].src, reply.packet[TCP].sport) == (VIP, 80)
    finally:
        maps.write_waypoint(dp.dp, None)


def test_l7_service_without_a_waypoint_falls_back_to_l4(dp: Runner) -> None:
    client_endpoint(dp)
    l7_service(dp, [(BACKEND, 8080)])
    maps.write_waypoint(dp.dp, None)
    out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=46001, dport=80, flags="S")))
    assert (out.packet[IP].dst, out.packet[TCP].dport) == (BACKEND, 8080)


def test_gc_expires_closed_connections_and_their_service_entries(dp: Runner) -> None:

    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    for sport in (47000, 47001):
        dp.from_pod(pkt(CLIENT, VIP, TCP(sport=sport, dport=80, flags="S")))
    # 47000 closes; 47001 stays open.
    dp.from_pod(pkt(CLIENT, VIP, TCP(sport=47000, dport=80, flags="FA")))
    dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=47000, flags="FA")))
    ring = FlowRing(64)
    gc = DatapathController("n1", dp.dp, ring)
    try:
        later = _time.clock_gettime_ns(_time.CLOCK_MONOTONIC) + 11 * 10**9
        assert gc.gc_once(later) == 2  # the closed egress entry and its service entry
        left = {(k.dir, maps.from_be16(k.tuple.sport)) for k in dp.dp.table("ct_v1").keys()}
        assert left == {(1, 47001), (3, 47001)}
        much_later = later + 7 * 3600 * 10**9  # past the TCP idle limit: expired with a flow
        assert gc.gc_once(much_later) == 2
        (expired,) = [r for r in ring.get(0) if getattr(r, "summary", "") == "connection expired"]
        assert expired.l4.source_port == 47001
    finally:
        gc.close_netlink()


def test_a_reused_port_after_a_direct_connection_still_gets_reverse_nat(dp: Runner) -> None:
    """Regression: a ClusterIP connection reusing the tuple of a closed direct connection
    must not inherit the old entry (no reverse NAT -> the client hangs)."""
    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=48000, dport=8080, flags="S")))
    dp.from_pod(pkt(CLIENT, BACKEND, TCP(sport=48000, dport=8080, flags="FA")))
    dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=48000, flags="FA")))
    # Same client port, now to the VIP: DNAT gives the very same post-translation tuple.
    out = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=48000, dport=80, flags="S")))
    assert out.events and out.events[-1].type == 1 and out.events[-1].verdict == 6  # NEW, TRANSLATED
    reply = dp.to_pod(pkt(BACKEND, CLIENT, TCP(sport=8080, dport=48000, flags="SA")))
    assert (reply.packet[IP].src, reply.packet[TCP].sport) == (VIP, 80)


def test_a_new_connection_chooses_its_backend_afresh(dp: Runner) -> None:
    client_endpoint(dp)
    service(dp, [(BACKEND, 8080)])
    dp.from_pod(pkt(CLIENT, VIP, TCP(sport=48100, dport=80, flags="S")))
    service_moved = [("10.244.2.77", 8080)]
    bs = [(ipaddress.IPv4Address(ip), port) for ip, port in service_moved]
    maps.write_service(dp.dp, ipaddress.IPv4Address(VIP), 80, TCP_P, bs,
                       maglev_table([f"{ip}:{port}" for ip, port in bs]), 0, None)
    again = dp.from_pod(pkt(CLIENT, VIP, TCP(sport=48100, dport=80, flags="S")))
    assert again.packet[IP].dst == "10.244.2.77"


# -- flow events ---------------------------------------------------------------------------

def test_python_reads_the_compiled_event_layout(dp: Runner) -> None:
    """The layout Python parses from events.h is the one the compiler laid out."""
    compiled = dp.dp.table("flow_event_layout").Leaf
    assert ctypes.sizeof(FlowEventLayout) == ctypes.sizeof(compiled)
    mine = [(name, getattr(FlowEventLayout, name).offset, getattr(FlowEventLayout, name).size)
            for name, *_ in FlowEventLayout._fields_]
    theirs = [(name, getattr(compiled, name).offset, getattr(compiled, name).size)
              for name, *_ in compiled._fields_]
    assert mine == theirs


def test_the_reader_is_woken_once_per_batch_not_per_event(dp: Runner) -> None:
    """Records below the batch size wait for the reader's timer (a poll sees nothing, a
    consume gets them); the batch's last record wakes the reader. The count is node-wide."""
    per_wakeup = int(re.search(r"#define EVENTS_PER_WAKEUP (\d+)",
                               (LIB_DIR / "events.h").read_text())[1])  # type: ignore[index]
    dp.dp.table("events_unwoken").clear()
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    frame = bytes(pkt(CLIENT, OTHER, TCP(sport=1, dport=80, flags="S")))  # UNKNOWN_SENDER
    cpus = sorted(os.sched_getaffinity(0))
    first, second = cpus[0], cpus[-1]  # two CPUs where there are two: one count for both

    def run_on(cpu: int, repeat: int) -> None:
        saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {cpu})
        try:
            test_run(dp.dp.from_pod_fd, frame, ctx=ctx, repeat=repeat)
        finally:
            os.sched_setaffinity(0, saved)

    run_on(first, 1)
    dp.dp.bpf.ring_buffer_poll(0)
    assert dp.events == []
    run_on(second, per_wakeup - 2)
    dp.dp.bpf.ring_buffer_poll(0)
    assert dp.events == []
    dp.dp.bpf.ring_buffer_consume()
    assert len(dp.events) == per_wakeup - 1
    run_on(first, 1)  # the batch's last record
    dp.dp.bpf.ring_buffer_poll(0)
    assert len(dp.events) == per_wakeup


def test_the_agent_reads_every_event_through_the_mapped_ring(dp: Runner) -> None:
    """EventReader.run on the real ring: every event arrives as a flow, in order, across
    the ring's wrap-around (5 × 5,000 records of 104 bytes > the 2 MiB ring)."""
    ring = FlowRing(30_000)
    reader = EventReader(EventDecoder("n1"), FlowIngest(ring), lambda: EndpointIndex())
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(dp.dp, stop), daemon=True)
    thread.start()
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    frame = bytes(pkt(CLIENT, OTHER, TCP(sport=1, dport=80, flags="S")))  # UNKNOWN_SENDER
    try:
        for round_ in range(1, 6):
            test_run(dp.dp.from_pod_fd, frame, ctx=ctx, repeat=5_000)
            deadline = _time.monotonic() + 5
            while ring.stats().seen_flows < 5_000 * round_ and _time.monotonic() < deadline:
                _time.sleep(0.02)
            assert ring.stats().seen_flows == 5_000 * round_
    finally:
        stop.set()
        thread.join(timeout=5)
    flows = [r for r in ring.get() if isinstance(r, Flow)]
    assert len(flows) == 25_000 and ring.stats().lost == {}
    assert {(f.verdict, f.drop_reason_desc, f.ip.source if f.ip else "") for f in flows} == {
        (Verdict.DROPPED, "UNKNOWN_SENDER", CLIENT)}
    times = [f.time for f in flows]
    assert times == sorted(times)
    dp.dp.bpf.ring_buffer_consume()
    assert dp.events == []  # nothing left behind for another reader


def test_a_failing_batch_does_not_stop_the_reader(dp: Runner, caplog: Any) -> None:
    ring = FlowRing(1000)
    reader = EventReader(EventDecoder("n1"), FlowIngest(ring), lambda: EndpointIndex())
    real, calls = reader.drain, []

    def flaky(batch: list[bytes]) -> int:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(batch)

    reader.drain = flaky  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=reader.run, args=(dp.dp, stop), daemon=True)
    thread.start()
    ctx = SkBuff()
    ctx.ifindex = IFINDEX
    frame = bytes(pkt(CLIENT, OTHER, TCP(sport=1, dport=80, flags="S")))
    try:
        test_run(dp.dp.from_pod_fd, frame, ctx=ctx, repeat=10)  # this batch fails
        deadline = _time.monotonic() + 5
        while not calls and _time.monotonic() < deadline:
            _time.sleep(0.02)
        test_run(dp.dp.from_pod_fd, frame, ctx=ctx, repeat=7)  # these must arrive
        # The failed batch may have taken any part of the first 10 (the reader can wake
        # while they are being sent): exactly those are lost, every other event arrives.
        deadline = _time.monotonic() + 5
        while ring.stats().seen_flows < 17 - calls[0] and _time.monotonic() < deadline:
            _time.sleep(0.02)
        _time.sleep(0.1)  # nothing more may arrive
    finally:
        stop.set()
        thread.join(timeout=5)
    assert 1 <= calls[0] <= 10 and ring.stats().seen_flows == 17 - calls[0]
    assert "a batch failed" in caplog.text
