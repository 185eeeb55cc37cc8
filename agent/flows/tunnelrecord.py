"""What the waypoint reports of an mTLS tunnel (issue 11), in one shape for both ends.

The waypoint's HBONE code (``l7proxy/hbone/``) builds a `TunnelEvent` when a tunnelled
connection is accepted or refused, on the side that decided; the agent turns each into a flow
(``IP.encrypted`` true, both SPIFFE IDs). Defined here, not in ``l7proxy``, because the agent's
runtime never imports the waypoint.

``drop_reason`` is a name from ``bpf/lib/drop.h`` (``agent.datapath.drop_reasons``), empty for a
forwarded connection:

    MTLS_UNKNOWN_CA, MTLS_CERT_EXPIRED, MTLS_WRONG_IDENTITY, MTLS_HANDSHAKE_FAILED  the peer's
        certificate or handshake, judged by the side that received it
    TUNNEL_DESTINATION_NOT_LOCAL  the CONNECT target is not a pod on the receiving node
    TUNNEL_NO_CERTIFICATE         the sending side holds no SVID for the client's identity
    TUNNEL_UPSTREAM_FAILED        the peer waypoint or the destination pod could not be reached
    POLICY_DENIED                 NetworkPolicy refused the source identity at the receiver
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Side = Literal["client", "server"]  # the sending waypoint, or the receiving one
Verdict = Literal["FORWARDED", "DROPPED"]


@dataclass(frozen=True, slots=True)
class TunnelEvent:
    time_ns: int  # time.time_ns() when decided
    side: Side
    verdict: Verdict
    drop_reason: str  # "" when forwarded
    source: tuple[str, int]  # the client pod's address and port (from Forwarded on the server)
    destination: tuple[str, int]  # the destination pod's address and port (:authority)
    source_spiffe_id: str  # "" when unknown (a refused handshake may present none)
    destination_spiffe_id: str  # "" when unknown
    peer: tuple[str, int]  # the other waypoint's address and port (its HBONE listener)
    detail: str = ""  # a human explanation of a refusal, e.g. OpenSSL's verify message
