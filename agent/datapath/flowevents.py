"""The one translation from a datapath ring-buffer record to a Flow.

Records are ``struct flow_event`` (bpf/lib/events.h), read with the layout parsed from that
header (`FlowEventLayout`). `RecordKeys` names the two byte ranges the agent keys its caches
on without decoding anything: "who" (addresses and service ports: what enrichment depends
on) and "what" (protocol, type, verdict, direction, observation point, TCP flags, drop
reason: everything the flow metrics count by).
"""

from __future__ import annotations

import ctypes
import ipaddress
import re
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from agent.datapath import drop_reasons
from agent.datapath.authz_l4 import AUTHZ_NAMES
from agent.datapath.cdefs import LIB_DIR, defines, struct_type
from agent.datapath.maps import from_be16, from_be32
from agent.datapath.policy_names import REGISTRY, PolicyNames
from agent.flows.flow import (
    IP,
    TCP,
    UDP,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    ICMPv4,
    Policy,
    TCPFlags,
    TrafficDirection,
    TulleInfo,
    Verdict,
)
from agent.flows.policyjson import authorization_policy, network_policy

EVENT_NEW, EVENT_DROP, EVENT_CLOSE, EVENT_REPLY = 1, 2, 3, 4
_VERDICTS = {1: Verdict.FORWARDED, 2: Verdict.DROPPED, 6: Verdict.TRANSLATED}
_DIRECTIONS = {1: TrafficDirection.INGRESS, 2: TrafficDirection.EGRESS}
_OBS_POINTS = {0: "TO_ENDPOINT", 3: "FROM_ENDPOINT"}
# Hubble's monitor message types and trace sub-types, so event_type filters behave alike.
_MSG_DROP, _MSG_TRACE = 1, 4
_TRACE_SUBTYPE = {0: 0, 3: 5}  # to-endpoint, from-endpoint
_EVENT_TYPES = {(t, s): EventType(t, s) for t in (_MSG_DROP, _MSG_TRACE) for s in range(256)}
_POLICY = defines(LIB_DIR / "policy.h", "POLICY_")
POLICY_MATCHED, POLICY_SET_MASK = _POLICY["POLICY_MATCHED"], _POLICY["POLICY_SET_MASK"]
EVENT_F_TUNNEL = defines(LIB_DIR / "events.h", "EVENT_F_")["EVENT_F_TUNNEL"]
CT_F_TUNNEL = defines(LIB_DIR / "conntrack.h", "CT_F_")["CT_F_TUNNEL"]


def _hairpin_addr() -> str:
    """hairpin.h's HAIRPIN_ADDR: the source a pod calling itself through a Service gets."""
    text = (LIB_DIR / "hairpin.h").read_text()
    m = re.search(r"#define\s+HAIRPIN_ADDR\s+bpf_htonl\((0x[0-9a-fA-F]+)\)", text)
    if m is None:
        raise ValueError(f"{LIB_DIR / 'hairpin.h'}: no #define HAIRPIN_ADDR bpf_htonl(0x…)")
    return str(ipaddress.IPv4Address(int(m.group(1), 16)))


HAIRPIN_ADDR = _hairpin_addr()


FlowEventLayout = struct_type(LIB_DIR / "events.h", "flow_event")
RECORD_SIZE = ctypes.sizeof(FlowEventLayout)
_WHO = ("saddr", "daddr", "orig_daddr", "dport", "orig_dport")
_WHAT = ("proto", "type", "verdict", "dir", "obs_point", "tcp_flags", "drop_reason")


def _span(layout: type[ctypes.Structure], names: tuple[str, ...]) -> tuple[int, int]:
    """[start, stop) of fields `names`, which must be adjacent and in this order in C."""
    order = [field[0] for field in layout._fields_]
    first = order.index(names[0])
    if tuple(order[first:first + len(names)]) != names:
        raise ValueError(f"struct flow_event must keep {', '.join(names)} adjacent, in order")
    last = getattr(layout, names[-1])
    return getattr(layout, names[0]).offset, last.offset + last.size


@dataclass(frozen=True)
class RecordKeys:
    """Where the cache keys sit in a raw record: ``raw[who[0]:who[1]]`` and the same for what."""

    who: tuple[int, int]
    what: tuple[int, int]

    @classmethod
    def of(cls, layout: type[ctypes.Structure] = FlowEventLayout) -> RecordKeys:
        return cls(_span(layout, _WHO), _span(layout, _WHAT))

    def addresses(self, who: bytes) -> tuple[str, str, int, tuple[str, int] | None]:
        """(source, destination, destination port, original VIP and port or None) of a who
        key."""
        src, dst, orig, dport, orig_dport = _WHO_FIELDS.unpack(who)
        original = (socket.inet_ntoa(orig), orig_dport) if orig != b"\0\0\0\0" else None
        return socket.inet_ntoa(src), socket.inet_ntoa(dst), dport, original


_WHO_FIELDS = struct.Struct("!4s4s4sHH")  # saddr, daddr, orig_daddr, dport, orig_dport
_TS = struct.Struct("=Q")


def _boot_offset_ns() -> int:
    """bpf_ktime_get_ns() is CLOCK_MONOTONIC; add this to get Unix time."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class EventDecoder:
    def __init__(
        self, node_name: str, policy_names: PolicyNames = REGISTRY,
        authz_names: PolicyNames = AUTHZ_NAMES,
    ) -> None:
        self.node_name = node_name
        self.offset_ns = _boot_offset_ns()
        self.policy_names = policy_names
        self.authz_names = authz_names

    def allowed_by(self, policy: int, protocol: int, port: int) -> tuple[Policy, ...]:
        """The NetworkPolicies behind a NEW event's ``policy`` (policy.h's policy_allows)."""
        if not policy & POLICY_MATCHED:
            return ()
        names = self.policy_names.allowed_by(policy & POLICY_SET_MASK, protocol, port)
        return tuple(network_policy(name) for name in names)

    def denied_by(self, policy: int, protocol: int, port: int) -> tuple[Policy, ...]:
        """The AuthorizationPolicies behind a DROP event's ``policy`` (authz.h's
        authz_judge, on the client's node)."""
        if not policy & POLICY_MATCHED:
            return ()
        names = self.authz_names.allowed_by(policy & POLICY_SET_MASK, protocol, port)
        return tuple(authorization_policy(name) for name in names)

    def time(self, raw: bytes) -> int:
        """Unix time (ns) of a raw record, without decoding the rest."""
        return int(_TS.unpack_from(raw)[0]) + self.offset_ns

    def decode(self, raw: bytes) -> Flow:
        """The flow of one raw record (RECORD_SIZE bytes), not yet enriched.

        ``IP.source_xlated`` (Hubble: the source after translation, ``IP.source`` before) is
        set where the datapath rewrote a source: on a translated connection's reply flow
        (EVENT_REPLY: the backend's reply leaves to_pod with the VIP as its source), and on
        a hairpin connection's NEW flow (the pod's own address SNATed to HAIRPIN_ADDR).

        ``IP.encrypted``: the connection was sent to the waypoint's mTLS tunnel
        (EVENT_F_TUNNEL, bpf/lib/mtls.h); the record then names its real destination."""
        ev = FlowEventLayout.from_buffer_copy(raw)
        sport, dport = from_be16(ev.sport), from_be16(ev.dport)
        src, dst = str(from_be32(ev.saddr)), str(from_be32(ev.daddr))
        src_id, dst_id = ev.src_identity, ev.dst_identity
        reply = ev.type == EVENT_REPLY
        xlated = ""
        if reply:  # recorded as the connection was opened: the packet went the other way
            src, dst, sport, dport, src_id, dst_id = dst, src, dport, sport, dst_id, src_id
            xlated = str(from_be32(ev.orig_daddr))
        elif ev.type == EVENT_NEW and ev.orig_daddr and ev.saddr == ev.daddr:
            xlated = HAIRPIN_ADDR
        l4: TCP | UDP | ICMPv4 | None
        if ev.proto == 6:
            l4 = TCP(sport, dport, TCPFlags.from_bits(ev.tcp_flags))
        elif ev.proto == 17:
            l4 = UDP(sport, dport)
        elif ev.proto == 1:
            l4 = ICMPv4()
        else:
            l4 = None
        dropped = ev.type == EVENT_DROP
        reason = drop_reasons.by_code(ev.drop_reason) if dropped else None
        counted = not reply  # a reply flow's counters would be the connection's so far
        info = TulleInfo(
            bytes_sent=ev.bytes_fwd if counted else 0,
            bytes_received=ev.bytes_rev if counted else 0,
            packets_sent=ev.packets_fwd if counted else 0,
            packets_received=ev.packets_rev if counted else 0,
            duration_ns=ev.duration_ns if ev.type == EVENT_CLOSE else 0,
            backend=f"{from_be32(ev.daddr)}:{from_be16(ev.dport)}" if ev.orig_daddr else "",
            drop_file=drop_reasons.source_file(ev.drop_file) if dropped else "",
            drop_line=ev.drop_line if dropped else 0,
        )
        event_type = (
            _EVENT_TYPES[(_MSG_DROP, ev.drop_reason & 0xFF)]
            if dropped
            else _EVENT_TYPES[(_MSG_TRACE, _TRACE_SUBTYPE.get(ev.obs_point, 0))]
        )
        direction = _DIRECTIONS.get(ev.dir, TrafficDirection.TRAFFIC_DIRECTION_UNKNOWN)
        allowed = self.allowed_by(ev.policy, ev.proto, dport) if ev.type == EVENT_NEW else ()
        denied = self.denied_by(ev.policy, ev.proto, dport) if dropped else ()
        ingress = direction == TrafficDirection.INGRESS
        return Flow(
            time=ev.ts_ns + self.offset_ns,
            verdict=_VERDICTS.get(ev.verdict, Verdict.VERDICT_UNKNOWN),
            drop_reason=ev.drop_reason if dropped else 0,
            drop_reason_desc=reason.name if reason else "",
            ip=IP(src, dst, source_xlated=xlated, encrypted=bool(ev.flags & EVENT_F_TUNNEL)),
            l4=l4,
            source=Endpoint(identity=src_id) if src_id else None,
            destination=Endpoint(identity=dst_id) if dst_id else None,
            type=FlowType.L3_L4,
            node_name=self.node_name,
            is_reply=reply or bool(ev.is_reply),
            event_type=event_type,
            traffic_direction=direction,
            trace_observation_point=_OBS_POINTS.get(ev.obs_point, ""),
            summary="connection closed" if ev.type == EVENT_CLOSE else "",
            tulle=info,
            ingress_allowed_by=allowed if ingress else (),
            egress_allowed_by=() if ingress else allowed,
            # The server's AuthorizationPolicy, judged at the client as it leaves (egress).
            egress_denied_by=denied,
        )

    def decode_expired(self, key: Any, entry: Any, now_ns: int) -> Flow:
        """A conntrack entry the garbage collector expired (idle UDP, or TCP never closed):
        reported as that connection's closing flow, with its counters (a tunnelled one's with
        its real destination, as its other flows)."""
        t = key.tuple
        tunnelled = bool(entry.flags & CT_F_TUNNEL)
        daddr, dport_be = (entry.backend_addr, entry.backend_port) if tunnelled else (
            t.daddr, t.dport)
        sport, dport = from_be16(t.sport), from_be16(dport_be)
        l4: TCP | UDP | None = (
            TCP(sport, dport) if t.proto == 6 else UDP(sport, dport) if t.proto == 17 else None
        )
        ingress = key.dir == 2
        return Flow(
            time=now_ns + self.offset_ns,
            verdict=Verdict.FORWARDED,
            ip=IP(str(from_be32(t.saddr)), str(from_be32(daddr)), encrypted=tunnelled),
            l4=l4,
            source=Endpoint(identity=entry.src_identity) if entry.src_identity else None,
            destination=Endpoint(identity=entry.dst_identity) if entry.dst_identity else None,
            type=FlowType.L3_L4,
            node_name=self.node_name,
            is_reply=False,
            event_type=_EVENT_TYPES[(_MSG_TRACE, 0 if ingress else 5)],
            traffic_direction=TrafficDirection.INGRESS if ingress else TrafficDirection.EGRESS,
            trace_observation_point="TO_ENDPOINT" if ingress else "FROM_ENDPOINT",
            summary="connection expired",
            tulle=TulleInfo(
                bytes_sent=entry.bytes_fwd,
                bytes_received=entry.bytes_rev,
                packets_sent=entry.packets_fwd,
                packets_received=entry.packets_rev,
                duration_ns=entry.last_seen_ns - entry.created_ns,
            ),
        )
