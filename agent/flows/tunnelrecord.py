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

import ipaddress
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
    # the other waypoint's address and port (its HBONE listener); ("", 0) when the sending
    # end refused before choosing one (no certificate, no waypoint known for the destination)
    peer: tuple[str, int]
    detail: str = ""  # a human explanation of a refusal, e.g. OpenSSL's verify message


# -- on the intake socket ------------------------------------------------------------------
# A batch of events is one line, ``{"kind":"tunnel","records":[[...], ...]}``: each event an
# array in the field order of `TunnelEvent` (addresses as [ip, port]). The agent's intake
# tells it from the L7 batches (a JSON array, or an object whose head is ``{"split":`` or
# ``{"marks":``) by its ``kind``. An older agent reads it as an L7 batch and refuses each
# record as malformed (counted, logged), never as a flow.

TUNNEL_KIND = "tunnel"
_HEAD = b'{"kind":"tunnel","records":'
_FIELDS = 10
MAX_DETAIL = 1024  # characters of `detail` kept: it is a message, not a log
_SIDES = ("client", "server")
_VERDICTS = ("FORWARDED", "DROPPED")


def encode_tunnel_batch(events: Sequence[TunnelEvent]) -> bytes:
    """One intake line for ``events``."""
    rows = [
        [
            e.time_ns,
            e.side,
            e.verdict,
            e.drop_reason,
            list(e.source),
            list(e.destination),
            e.source_spiffe_id,
            e.destination_spiffe_id,
            list(e.peer),
            e.detail,
        ]
        for e in events
    ]
    return _HEAD + json.dumps(rows, separators=(",", ":")).encode() + b"}\n"


def _address(value: Any, what: str, *, optional: bool = False) -> tuple[str, int]:
    if optional and value == ["", 0]:
        return "", 0
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not isinstance(value[0], str)
        or type(value[1]) is not int
        or not 0 <= value[1] <= 65535
    ):
        raise ValueError(f"a tunnel event's {what} must be [ip, port], got {value!r}")
    try:
        ipaddress.ip_address(value[0])
    except ValueError:
        raise ValueError(
            f"a tunnel event's {what} address {value[0]!r} is not an IP address"
        ) from None
    return value[0], value[1]


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a tunnel event's {what} must be a string, got {value!r}")
    return value


def tunnel_event_from_json(value: Any) -> TunnelEvent:
    """One event of a tunnel batch, checked field by field (ValueError says which)."""
    if not isinstance(value, list) or len(value) != _FIELDS:
        raise ValueError(f"a tunnel event is an array of {_FIELDS} fields, got {value!r:.200}")
    when, side, verdict, reason = value[0], value[1], value[2], value[3]
    if type(when) is not int or when < 0:
        raise ValueError(f"a tunnel event's time must be nanoseconds, got {when!r}")
    if side not in _SIDES:
        raise ValueError(f"a tunnel event's side must be client or server, got {side!r}")
    if verdict not in _VERDICTS:
        raise ValueError(f"a tunnel event's verdict must be FORWARDED or DROPPED, got {verdict!r}")
    reason = _text(reason, "drop reason")
    if (verdict == "DROPPED") != bool(reason):
        raise ValueError(
            f"a {verdict} tunnel event must {'' if verdict == 'DROPPED' else 'not '}"
            f"name a drop reason, got {reason!r}"
        )
    for at, what in ((6, "source SPIFFE ID"), (7, "destination SPIFFE ID")):
        if value[at] and not _text(value[at], what).startswith("spiffe://"):
            raise ValueError(
                f"a tunnel event's {what} must be a spiffe:// URI or empty, got {value[at]!r:.200}"
            )
    return TunnelEvent(
        time_ns=when,
        side=side,
        verdict=verdict,
        drop_reason=reason,
        source=_address(value[4], "source"),
        destination=_address(value[5], "destination"),
        source_spiffe_id=_text(value[6], "source SPIFFE ID"),
        destination_spiffe_id=_text(value[7], "destination SPIFFE ID"),
        peer=_address(value[8], "peer", optional=True),
        detail=_text(value[9], "detail")[:MAX_DETAIL],
    )


def read_tunnel_batch(value: Any) -> Iterator[TunnelEvent | ValueError]:
    """The events of one decoded tunnel line, each checked: a malformed one is its
    ValueError, the others still count."""
    items = value.get("records") if isinstance(value, dict) else None
    if not isinstance(items, list):
        yield ValueError("a tunnel batch's records must be an array")
        return
    for item in items:
        try:
            yield tunnel_event_from_json(item)
        except ValueError as err:
            yield err
