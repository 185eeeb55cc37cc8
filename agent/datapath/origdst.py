"""The waypoint's view of transparent redirection: which VIP:port a connection asked for."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from agent.datapath.bpf_loader import BPF, BPF_DIR, load_program
from agent.datapath.maps import be16, be32, from_be16, from_be32

TCP = 6


@dataclass(frozen=True, slots=True)
class OriginalDestination:
    address: str
    port: int
    client_identity: int


class OriginalDestinations:
    """Reads l7_orig_dst_v1, written by from_pod.c when it redirects a connection."""

    def __init__(self, pin_dir: Path) -> None:
        self.bpf: BPF = load_program([BPF_DIR / "waypoint_maps.c"], [f'-DTULLE_PIN_DIR="{pin_dir}"'])
        self.table = self.bpf[b"l7_orig_dst_v1"]

    def lookup(self, client: str, client_port: int) -> OriginalDestination | None:
        key = self.table.Key()
        key.client, key.client_port, key.proto = be32(ipaddress.IPv4Address(client)), be16(client_port), TCP
        try:
            value = self.table[key]
        except KeyError:
            return None
        return OriginalDestination(str(from_be32(value.vip)), from_be16(value.vport), value.client_identity)

    def close(self) -> None:
        self.bpf.cleanup()
