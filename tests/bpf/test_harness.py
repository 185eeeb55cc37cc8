"""The loader and test-run harness, proven on bpf/probe_parse.c with Scapy-built packets.

Each case asserts the verdict, the drop reason and the file and line that dropped, and for
packets that pass, that the output bytes equal the input and no drop was recorded.
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from agent.datapath import drop_reasons
from agent.datapath.bpf_loader import BPF_DIR
from agent.datapath.testrun import TC_ACT_OK, TC_ACT_SHOT, SkBuff
from tests.bpf.conftest import Probe, ProbeOutcome

pytestmark = pytest.mark.bpf

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
SRC, DST = "10.1.0.5", "10.96.0.10"
PROBE_C = (BPF_DIR / "probe_parse.c").read_text().splitlines()


def site(name: str) -> int:
    """Line of the drop after ``/* site: <name> */`` in probe_parse.c."""
    hits = [n for n, text in enumerate(PROBE_C, start=1) if f"/* site: {name} */" in text]
    assert len(hits) == 1, f"site {name!r} found {len(hits)} times"
    return hits[0] + 1


def assert_passed(out: ProbeOutcome, packet: bytes) -> None:
    assert out.verdict == TC_ACT_OK
    assert out.run.data_out == packet  # pass-through leaves every byte alone
    assert out.drops == []
    assert out.seen.drop_reason == 0


def assert_dropped(out: ProbeOutcome, reason: str, at: str) -> None:
    code = drop_reasons.code(reason)
    assert out.verdict == TC_ACT_SHOT
    assert out.seen.drop_reason == code
    assert [(d.name, d.file, d.line) for d in out.drops] == [
        (drop_reasons.by_code(code).name, "probe_parse.c", site(at))
    ]


def ports(out: ProbeOutcome) -> tuple[int, int]:
    return socket.ntohs(out.seen.tuple.sport), socket.ntohs(out.seen.tuple.dport)


# ---- packets that pass --------------------------------------------------------------------------


def test_tcp_syn_passes_and_tuple_is_read(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST) / TCP(sport=40000, dport=80, flags="S"))
    out = probe.run(packet)
    assert_passed(out, packet)
    assert out.seen.eth_proto == 0x0800
    assert out.seen.tuple.saddr == struct.unpack("=I", socket.inet_aton(SRC))[0]
    assert out.seen.tuple.daddr == struct.unpack("=I", socket.inet_aton(DST))[0]
    assert out.seen.tuple.proto == socket.IPPROTO_TCP
    assert ports(out) == (40000, 80)
    assert (out.seen.l4_parsed, out.seen.fragment) == (1, 0)


def test_udp_passes_with_ports(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST) / UDP(sport=5353, dport=53) / Raw(b"q" * 12))
    out = probe.run(packet)
    assert_passed(out, packet)
    assert ports(out) == (5353, 53)


def test_icmp_echo_passes_with_type_and_code(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST) / ICMP(type=8, code=0))
    out = probe.run(packet)
    assert_passed(out, packet)
    assert (out.seen.icmp_type, out.seen.icmp_code, out.seen.l4_parsed) == (8, 0, 1)
    assert ports(out) == (0, 0)


@pytest.mark.parametrize(
    "options",
    [
        [IPOption_NOP()] * 4,  # IHL 6
        [IPOption_RR(routers=["192.0.2.1", "192.0.2.2"])] + [IPOption_NOP()] * 1,  # IHL 8
        [IPOption_RR(routers=[f"192.0.2.{i}" for i in range(9)])],  # IHL 15, the maximum
    ],
    ids=["ihl6", "ihl8", "ihl15"],
)
def test_ip_options_are_skipped_to_read_ports(probe: Probe, options: list[object]) -> None:
    ip = IP(src=SRC, dst=DST, options=options)
    packet = bytes(ETH / ip / TCP(sport=1234, dport=8443))
    assert IP(packet[14:]).ihl > 5
    out = probe.run(packet)
    assert_passed(out, packet)
    assert ports(out) == (1234, 8443)


def test_first_fragment_carries_ports(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST, flags="MF", frag=0) / UDP(sport=7, dport=9) / b"x")
    out = probe.run(packet)
    assert_passed(out, packet)
    assert (out.seen.fragment, out.seen.l4_parsed) == (1, 1)
    assert ports(out) == (7, 9)


def test_later_fragment_has_no_ports_to_read(probe: Probe) -> None:
    # The payload starts with bytes that would read as ports 0xdead -> 0xbeef.
    payload = b"\xde\xad\xbe\xef" + b"\x00" * 20
    packet = bytes(ETH / IP(src=SRC, dst=DST, proto=socket.IPPROTO_TCP, frag=185) / payload)
    out = probe.run(packet)
    assert_passed(out, packet)
    assert (out.seen.fragment, out.seen.l4_parsed) == (2, 0)
    assert ports(out) == (0, 0)


def test_fragments_drop_when_the_config_switch_says_so(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST, proto=socket.IPPROTO_UDP, frag=3) / (b"y" * 16))
    probe.set_config("TULLE_CFG_DROP_FRAGMENTS", 1)
    assert_dropped(probe.run(packet), "IP_FRAGMENTATION_NOT_SUPPORTED", "fragments off")
    probe.set_config("TULLE_CFG_DROP_FRAGMENTS", 0)
    assert_passed(probe.run(packet), packet)


def test_ethernet_padding_after_ip_is_fine(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST) / TCP(dport=22, flags="A"))
    padded = packet + b"\x00" * 10  # frames shorter than 60 bytes get padded on the wire
    assert_passed(probe.run(padded), padded)


@pytest.mark.parametrize(
    ("frame", "ethertype"),
    [
        (ETH / ARP(psrc=SRC, pdst=DST), 0x0806),
        (ETH / IPv6(src="fd00::1", dst="fd00::2") / TCP(dport=80), 0x86DD),
        (ETH / Raw(b"\x00" * 46), 0x9000),  # loopback test frame, nothing we parse
    ],
    ids=["arp", "ipv6", "other"],
)
def test_non_ipv4_frames_pass_untouched(probe: Probe, frame: Ether, ethertype: int) -> None:
    if ethertype == 0x9000:
        frame.type = ethertype
    packet = bytes(frame)
    out = probe.run(packet)
    assert_passed(out, packet)
    assert out.seen.eth_proto == ethertype
    assert out.seen.l4_parsed == 0


# ---- packets that drop --------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [0, 12, 19])
def test_truncated_ipv4_header_cannot_be_test_run(probe: Probe, cut: int) -> None:
    # Kernel 6.x builds no test skb with an IP ethertype and a partial IP header, so the
    # program's own check ("truncated ipv4 header") only meets such frames on real devices.
    packet = bytes(ETH / IP(src=SRC, dst=DST) / TCP())[: 14 + cut]
    with pytest.raises(OSError, match="EINVAL.*whole IPv4/IPv6 header") as err:
        probe.run(packet)
    assert err.value.errno == errno.EINVAL


@pytest.mark.parametrize("ihl", [0, 4])
def test_ihl_below_five(probe: Probe, ihl: int) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST, ihl=ihl) / TCP())
    assert_dropped(probe.run(packet), "INVALID_PACKET_DROPPED", "version or ihl")


def test_wrong_ip_version_under_ipv4_ethertype(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST, version=6) / TCP())
    assert_dropped(probe.run(packet), "INVALID_PACKET_DROPPED", "version or ihl")


@pytest.mark.parametrize(
    "ip",
    [
        IP(src=SRC, dst=DST, len=400),  # claims more than the frame holds
        IP(src=SRC, dst=DST, len=16),  # shorter than its own header
        IP(src=SRC, dst=DST, ihl=15, len=40),  # options run past tot_len
        IP(src=SRC, dst=DST, ihl=15, len=60),  # options run past the frame
    ],
    ids=["len-past-frame", "len-under-header", "options-past-len", "options-past-frame"],
)
def test_total_length_inconsistent(probe: Probe, ip: IP) -> None:
    packet = bytes(ETH / ip / TCP())
    assert_dropped(probe.run(packet), "INVALID_PACKET_DROPPED", "tot_len")


@pytest.mark.parametrize(
    ("proto", "l4", "at"),
    [
        (socket.IPPROTO_TCP, b"\x00" * 12, "tcp header"),
        (socket.IPPROTO_TCP, bytes(TCP(dataofs=4)), "tcp header"),
        (socket.IPPROTO_UDP, b"\x00" * 6, "udp header"),
        (socket.IPPROTO_ICMP, b"\x08\x00\x00", "icmp header"),
    ],
    ids=["tcp-truncated", "tcp-doff4", "udp-truncated", "icmp-truncated"],
)
def test_truncated_or_invalid_l4_header(probe: Probe, proto: int, l4: bytes, at: str) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST, proto=proto) / Raw(l4))
    assert_dropped(probe.run(packet), "CT_TRUNCATED_OR_INVALID_HEADER", at)


def test_drop_counters_add_up_per_packet(probe: Probe) -> None:
    packet = bytes(ETH / IP(src=SRC, dst=DST, ihl=3) / TCP())
    for _ in range(3):
        assert probe.run(packet).verdict == TC_ACT_SHOT
    total = sum(s.packets for s in probe.bpf[b"tulle_drops_v1"].getvalue(134))
    assert total >= 3


# ---- the ctx ------------------------------------------------------------------------------------


def test_ctx_fields_reach_the_program_and_come_back(probe: Probe) -> None:
    ctx = SkBuff(mark=0x7E11E, priority=6, ifindex=1, ingress_ifindex=1)
    ctx.cb[1] = 4242
    packet = bytes(ETH / IP(src=SRC, dst=DST, ihl=4) / TCP())
    out = probe.run(packet, ctx=ctx)
    assert (out.seen.mark, out.seen.priority, out.seen.cb1) == (0x7E11E, 6, 4242)
    assert (out.seen.ifindex, out.seen.ingress_ifindex) == (1, 1)
    back = out.run.skb()
    assert back.cb[0] == drop_reasons.code("INVALID_PACKET_DROPPED")  # written by the program
    assert (back.mark, back.cb[1]) == (0x7E11E, 4242)
