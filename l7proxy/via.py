"""How the waypoint's upstream hop reaches a backend pod (pure): plaintext from the
waypoint's own address (`Direct`), or an HBONE stream presenting the *client's* identity to
the backend node's waypoint (`Tunnel`), or not at all (`Refused`).

The rule mirrors what the kernel does for the same pair without a waypoint (bpf/from_pod.c,
``mtls.h``), so an HTTPRoute never weakens or strengthens what the backend accepts:

| backend (mode on its port)  | enrolled client         | client not enrolled      |
|-----------------------------|-------------------------|--------------------------|
| not enrolled, or DISABLE    | Direct                  | Direct                   |
| PERMISSIVE                  | Tunnel (client's SVID)  | Direct (plaintext)       |
| STRICT                      | Tunnel (client's SVID)  | Refused: AUTH_REQUIRED   |

The waypoint never presents an identity the client does not have: a client outside the
mesh (a pod of a namespace without ``tulle.io/mtls``, a Gateway's outside caller) has none,
so plaintext from it is not laundered into a tunnel. A `Tunnel` is also a pool key: its
fields are (source ID, destination ID, peer waypoint), so upstream connections of two
identities never mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Address = tuple[str, int]
AUTH_REQUIRED = "AUTH_REQUIRED"  # bpf/lib/drop.h DROP_AUTH_REQUIRED: plaintext to STRICT


@dataclass(frozen=True, slots=True)
class Direct:
    """Plaintext TCP from the waypoint's address (with its mark)."""


DIRECT = Direct()


@dataclass(frozen=True, slots=True)
class Tunnel:
    """An HBONE CONNECT stream to ``peer`` (the backend node's waypoint, 15008; this node's
    own for a local backend) presenting ``source_id``'s SVID; ``destination_id`` is the
    backend pod's identity, which the peer must prove with its own SVID (``hbone.pool``)."""

    source_id: str
    destination_id: str
    peer: Address


@dataclass(frozen=True, slots=True)
class Refused:
    """No upstream hop is allowed: ``drop`` names why (the flow's drop reason)."""

    drop: str
    detail: str


Via = Direct | Tunnel


class HopRefused(ConnectionError):
    """A tunnel could not be opened (``l7proxy.hbone.bridge``): ``drop`` names why."""

    def __init__(self, drop: str, detail: str) -> None:
        super().__init__(detail)
        self.drop = drop


class Mesh(Protocol):
    """What `choose` reads (``l7proxy.hbone.directory.PodDirectory``)."""

    def identity_of(self, ip: str) -> str | None: ...

    def mode_of(self, ip: str, port: int) -> str | None: ...

    def waypoint_of(self, ip: str) -> Address | None: ...


def choose(client_ip: str, backend: Address, mesh: Mesh) -> Via | Refused:
    """The hop for a request from ``client_ip`` routed to ``backend`` (see the table)."""
    mode = mesh.mode_of(*backend)
    if mode is None or mode == "DISABLE":
        return DIRECT
    client_enrolled = mesh.mode_of(client_ip, 0) is not None
    source_id = mesh.identity_of(client_ip) if client_enrolled else None
    if source_id is None:
        if mode == "STRICT":
            return Refused(
                AUTH_REQUIRED,
                f"{backend[0]}:{backend[1]} accepts only mutual TLS and the client "
                f"{client_ip} has no identity in the mesh",
            )
        return DIRECT
    destination_id = mesh.identity_of(backend[0])
    peer = mesh.waypoint_of(backend[0])
    if destination_id is None or peer is None:
        # Enrolled in the plan but not placed (no node, no waypoint address yet): a tunnel
        # has nowhere to go, and plaintext would be refused by STRICT or weaken PERMISSIVE.
        return Refused(
            "TUNNEL_UPSTREAM_FAILED", f"no waypoint known for the backend {backend[0]}"
        )
    return Tunnel(source_id, destination_id, peer)
