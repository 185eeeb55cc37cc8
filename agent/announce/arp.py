"""ARP frames on Ethernet (RFC 826), pure: read a request, write a reply and a gratuitous
announcement. Only IPv4 over Ethernet; anything else (a short frame, another hardware or
protocol type, a reply) reads as None and is ignored."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # htype ptype hlen plen oper sha spa tha tpa
_HEADER = 14
REQUEST, REPLY = 1, 2
FRAME_LEN = _HEADER + _ARP.size  # 42; the wire pads to 60


@dataclass(frozen=True, slots=True)
class ArpRequest:
    sender_mac: bytes
    sender_ip: str
    target_ip: str


def parse_request(frame: bytes) -> ArpRequest | None:
    if len(frame) < FRAME_LEN or frame[12:14] != ETH_P_ARP.to_bytes(2, "big"):
        return None
    htype, ptype, hlen, plen, oper, sha, spa, _tha, tpa = _ARP.unpack_from(frame, _HEADER)
    if (htype, ptype, hlen, plen, oper) != (1, 0x0800, 6, 4, REQUEST):
        return None
    return ArpRequest(sha, str(ipaddress.IPv4Address(spa)), str(ipaddress.IPv4Address(tpa)))


def _frame(dst: bytes, src: bytes, oper: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    eth = dst + src + ETH_P_ARP.to_bytes(2, "big")
    body = _ARP.pack(1, 0x0800, 6, 4, oper, sha, ipaddress.IPv4Address(spa).packed, tha,
                     ipaddress.IPv4Address(tpa).packed)
    return eth + body


def reply(request: ArpRequest, mac: bytes) -> bytes:
    """``mac`` has ``request.target_ip``: said to the asker alone."""
    return _frame(request.sender_mac, mac, REPLY, mac, request.target_ip, request.sender_mac,
                  request.sender_ip)


def gratuitous(ip: str, mac: bytes) -> bytes:
    """A broadcast request for ``ip`` from ``ip`` (what ``arping -U`` sends): every host that
    has ``ip`` in its neighbour table moves it to ``mac``."""
    return _frame(BROADCAST, mac, REQUEST, mac, ip, b"\x00" * 6, ip)
