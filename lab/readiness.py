"""Implicit readiness for lab pods: every declared port is listening inside the pod.

Read from /proc/PID/net/{tcp,tcp6,udp,udp6}, which show the sockets of PID's network
namespace, so no probe traffic is needed and nothing crosses a namespace boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

_TCP_LISTEN = "0A"


def listening_ports(pid: int, protocol: str) -> set[int]:
    proto = protocol.lower()
    found: set[int] = set()
    for family in (proto, proto + "6"):
        try:
            lines = Path(f"/proc/{pid}/net/{family}").read_text().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            # UDP sockets have no LISTEN state; a bound UDP socket counts.
            if proto == "udp" or fields[3] == _TCP_LISTEN:
                found.add(port)
    return found


def ports_ready(pid: int, ports: Iterable[tuple[int, str]]) -> bool:
    by_proto: dict[str, set[int]] = {}
    for port, protocol in ports:
        by_proto.setdefault(protocol.upper(), set()).add(port)
    return all(wanted <= listening_ports(pid, proto) for proto, wanted in by_proto.items())
