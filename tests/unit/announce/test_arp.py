"""ARP frames: requests read, replies and gratuitous announcements written; anything else
is ignored rather than answered."""

import pytest
from scapy.layers.l2 import ARP, Ether

from agent.announce.arp import ArpRequest, gratuitous, parse_request, reply

MAC = bytes.fromhex("020000000011")
ASKER = "02:00:00:00:00:99"


def test_a_request_is_read_and_answered_to_the_asker_alone():
    frame = bytes(Ether(src=ASKER, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=ASKER, psrc="10.240.0.2", pdst="10.240.0.241"))
    request = parse_request(frame)
    assert request == ArpRequest(bytes.fromhex("020000000099"), "10.240.0.2", "10.240.0.241")
    answer = Ether(reply(request, MAC))
    assert answer.dst == ASKER and answer.src == "02:00:00:00:00:11"
    assert (answer[ARP].op, answer[ARP].hwsrc, answer[ARP].psrc) == (2, "02:00:00:00:00:11", "10.240.0.241")
    assert (answer[ARP].hwdst, answer[ARP].pdst) == (ASKER, "10.240.0.2")


def test_gratuitous_arp_is_a_broadcast_request_from_the_address_for_itself():
    frame = Ether(gratuitous("10.240.0.241", MAC))
    assert frame.dst == "ff:ff:ff:ff:ff:ff"
    assert (frame[ARP].op, frame[ARP].psrc, frame[ARP].pdst, frame[ARP].hwsrc) == (1, "10.240.0.241", "10.240.0.241", "02:00:00:00:00:11")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00" * 41,  # one byte short
        bytes(Ether(src=ASKER) / ARP(op=2, hwsrc=ASKER, psrc="10.240.0.2", pdst="10.240.0.241")),  # a reply
        bytes(Ether(src=ASKER, type=0x0800) / (b"\x00" * 28)),  # not ARP
        bytes(Ether(src=ASKER) / ARP(op=1, ptype=0x86DD, plen=4, psrc="10.240.0.2", pdst="10.240.0.241")),  # another protocol
        bytes(Ether(src=ASKER) / ARP(op=1, hwtype=6, psrc="10.240.0.2", pdst="10.240.0.241")),  # not Ethernet
    ],
    ids=["empty", "short", "reply", "ipv4-frame", "ptype", "htype"],
)
def test_anything_but_an_ethernet_ipv4_request_is_ignored(frame):
    assert parse_request(frame) is None
