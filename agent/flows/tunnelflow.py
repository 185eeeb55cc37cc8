"""A waypoint's `TunnelEvent` as a flow: one L3/L4 TCP flow per tunnelled connection, per
side that reported it, in Hubble's shape.

- ``IP``: the pods (the client pod and the destination pod of the CONNECT), never the
  waypoints, except for a refusal before any pod was named: a refused handshake goes from
  the dialling node's address to the receiving 15008 listener, a connection the sending end
  could not place to its 15007 listener. ``IP.encrypted`` is true for every tunnel flow,
  refused ones included (the connection was to ride mTLS; a refused one never carried
  plaintext across the fabric).
- ``l4.TCP``: the pods' ports, no flags (the waypoint sees connections, not segments).
- ``verdict``: FORWARDED, or DROPPED with ``drop_reason_desc`` the event's reason name and
  ``drop_reason`` its code from ``bpf/lib/drop.h`` (`agent.datapath.drop_reasons`).
- ``event_type``: a drop (1, sub type the reason's code) or a trace (4) at the observation
  point below, so ``--type drop:MTLS_UNKNOWN_CA`` and ``--type trace:to-crypto`` find them.
- ``trace_observation_point``: Hubble has no waypoint point. The sending waypoint reports
  ``TO_CRYPTO`` (the pod's connection goes into TLS there) and the receiving one
  ``FROM_CRYPTO`` (it comes out of TLS there), Hubble's points for traffic entering and
  leaving encryption. ``traffic_direction`` is EGRESS at the client's node, INGRESS at the
  destination's, as Hubble reports endpoints' traffic; ``is_reply`` is false.
- ``node_name``: the node of the waypoint that reported it.
- ``source``/``destination``: enriched from the pods' IPs like every flow (namespace, labels,
  workloads, ``tulle.source_spiffe_id``/``destination_spiffe_id`` from the pods'
  ServiceAccounts). When the certificate the peer presented names another identity than
  the pod at that address (a refused handshake), the pod's stays and the presented one is
  ``tulle.peer_spiffe_id``; where no pod is known the event's IDs fill the endpoints.
- ``tulle.tunnel``: ``side`` (client/server), ``peer`` (the other waypoint, ip:port; empty when
  none was chosen) and
  ``detail`` (why it was refused).
- ``Summary``: "TCP tunnel accepted (mTLS)", "mTLS refused: unknown CA"…
"""

from __future__ import annotations

import dataclasses
import uuid

from agent.datapath import drop_reasons
from agent.flows.flow import (
    IP,
    TCP,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    IPVersion,
    TrafficDirection,
    TulleInfo,
    TunnelInfo,
    Verdict,
)
from agent.flows.names import EVENT_DROP, EVENT_TRACE, TRACE_POINT_BY_ENUM
from agent.flows.tunnelrecord import TunnelEvent

CLIENT_POINT = "TO_CRYPTO"  # the sending waypoint: the pod's connection goes into TLS
SERVER_POINT = "FROM_CRYPTO"  # the receiving waypoint: it comes out of TLS to the pod

_REFUSED = {
    "MTLS_UNKNOWN_CA": "mTLS refused: unknown CA",
    "MTLS_CERT_EXPIRED": "mTLS refused: certificate expired",
    "MTLS_WRONG_IDENTITY": "mTLS refused: wrong identity",
    "MTLS_HANDSHAKE_FAILED": "mTLS refused: handshake failed",
    "TUNNEL_DESTINATION_NOT_LOCAL": "Tunnel refused: destination not on this node",
    "TUNNEL_NO_CERTIFICATE": "Tunnel refused: no certificate for the client's identity",
    "TUNNEL_UPSTREAM_FAILED": "Tunnel failed: peer or destination unreachable",
    "POLICY_DENIED": "Tunnel refused: policy denied",
}


def summary(event: TunnelEvent) -> str:
    if event.verdict == "FORWARDED":
        return (
            "TCP tunnel accepted (mTLS)" if event.side == "server" else "TCP tunnel opened (mTLS)"
        )
    reason = event.drop_reason
    return _REFUSED.get(reason) or f"Tunnel refused: {reason.replace('_', ' ').lower()}"


def _host_port(address: tuple[str, int]) -> str:
    host, port = address
    if not host:  # no peer waypoint was chosen
        return ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tunnel_flow(event: TunnelEvent, node_name: str = "", flow_id: str = "") -> Flow:
    """The flow of ``event``, its endpoints not named yet (enrich, then `with_identities`).
    A drop reason the datapath's header does not know raises ValueError."""
    (src, sport), (dst, dport) = event.source, event.destination
    client = event.side == "client"
    point = CLIENT_POINT if client else SERVER_POINT
    code = 0
    dropped = event.verdict == "DROPPED"
    if dropped:
        try:
            code = drop_reasons.code(event.drop_reason)
        except KeyError:
            raise ValueError(
                f"a tunnel event's drop reason {event.drop_reason!r} is not in "
                f"{drop_reasons.DROP_H.name}"
            ) from None
        event_type = EventType(EVENT_DROP, code)
    else:
        event_type = EventType(EVENT_TRACE, TRACE_POINT_BY_ENUM[point])
    return Flow(
        time=event.time_ns,
        uuid=flow_id or str(uuid.uuid4()),
        verdict=Verdict.DROPPED if dropped else Verdict.FORWARDED,
        drop_reason=code,
        drop_reason_desc=event.drop_reason,
        ip=IP(src, dst, IPVersion.IPv6 if ":" in src else IPVersion.IPv4, encrypted=True),
        l4=TCP(sport, dport),
        type=FlowType.L3_L4,
        node_name=node_name,
        is_reply=False,
        event_type=event_type,
        traffic_direction=TrafficDirection.EGRESS if client else TrafficDirection.INGRESS,
        trace_observation_point=point,
        summary=summary(event),
        tulle=TulleInfo(tunnel=TunnelInfo(event.side, _host_port(event.peer), event.detail)),
    )


def _named(ep: Endpoint | None, spiffe_id: str) -> Endpoint | None:
    """``ep`` with the event's SPIFFE ID where enrichment found none."""
    if not spiffe_id or (ep is not None and ep.spiffe_id):
        return ep
    return (
        Endpoint(spiffe_id=spiffe_id)
        if ep is None
        else dataclasses.replace(ep, spiffe_id=spiffe_id)
    )


def with_identities(flow: Flow, event: TunnelEvent) -> Flow:
    """The (enriched) flow with the event's SPIFFE IDs: the pods' stay; the identity the
    peer's certificate presented (the client's at the server, the server's at the client)
    goes to ``tulle.peer_spiffe_id`` when it is not the pod's."""
    source = _named(flow.source, event.source_spiffe_id)
    destination = _named(flow.destination, event.destination_spiffe_id)
    server = event.side == "server"
    presented = event.source_spiffe_id if server else event.destination_spiffe_id
    pod = source if server else destination
    tulle = flow.tulle
    if presented and pod is not None and pod.spiffe_id != presented:
        tulle = dataclasses.replace(tulle or TulleInfo(), peer_spiffe_id=presented)
    return dataclasses.replace(flow, source=source, destination=destination, tulle=tulle)
