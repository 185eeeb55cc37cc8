"""The waypoint's view of transparent redirection: which VIP:port a connection asked for."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from agent.datapath.bpf_loader import BPF, BPF_DIR, LIB_DIR, load_program
from agent.datapath.cdefs import enum_values
from agent.datapath.maps import be16, be32, from_be16, from_be32

TCP = 6
WAYPOINT_MARK = enum_values(LIB_DIR / "redirect.h", "tulle_mark")["TULLE_MARK_WAYPOINT"]
"""SO_MARK on the waypoint's upstream sockets: to_pod.c admits this node's waypoint address
as the waypoint only with it."""


@dataclass(frozen=True, slots=True)
class OriginalDestination:
    address: str
    port: int
    client_identity: int


class OriginalDestinations:
    """Reads l7_orig_dst_v1, written by from_pod.c when it redirects a connection."""

    def __init__(self, pin_dir: Path, wait: float = 60.0) -> None:
        # The agent's datapath owns the map: never create it here, only open it once pinned.
        pinned = pin_dir / "l7_orig_dst_v1"
        deadline = time.monotonic() + wait
        while not pinned.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{pinned} did not appear: is the node agent's datapath up?")
            time.sleep(0.1)
        sources = [BPF_DIR / "waypoint_maps.c"]
        self.bpf: BPF = load_program(sources, [f'-DTULLE_PIN_DIR="{pin_dir}"'])
        self.table = self.bpf[b"l7_orig_dst_v1"]

    def lookup(self, client: str, client_port: int) -> OriginalDestination | None:
        key = self.table.Key()
        key.client = be32(ipaddress.IPv4Address(client))
        key.client_port, key.proto = be16(client_port), TCP
        try:
            value = self.table[key]
        except KeyError:
            return None
        vip, vport = str(from_be32(value.vip)), from_be16(value.vport)
        return OriginalDestination(vip, vport, value.client_identity)

    def close(self) -> None:
        self.bpf.cleanup()
