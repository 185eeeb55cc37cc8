"""Kernel trace records (``struct trace_record``, bpf/lib/conn_trace.h) into flows. Pure.

A close record becomes an L4 flow, oriented client -> server like the datapath's flows, with
the measurements under ``tulle.tcp``. A drop record becomes a DROPPED flow whose
``drop_reason_desc`` is the kernel's reason name (``NO_SOCKET``), with the code and the
kernel function that freed the packet under ``tulle``.

    rec = KernelRecord.of(leaf)                  # from BCC's ctypes struct
    flow = to_flow(rec, clock, reasons, symbol)  # or None for a record to ignore
"""

from __future__ import annotations

import operator
import socket
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from agent.flows.flow import (
    IP,
    TCP,
    UDP,
    EventType,
    Flow,
    FlowType,
    IPVersion,
    SrttSummary,
    TCPFlags,
    TcpTrace,
    TrafficDirection,
    TulleInfo,
    Verdict,
)
from agent.flows.names import EVENT_DROP, EVENT_TRACE_SOCK

KIND_CLOSE, KIND_DROP = 1, 2
ROLE_CLIENT, ROLE_SERVER = 1, 2
ROLES = {ROLE_CLIENT: "client", ROLE_SERVER: "server"}
# include/net/tcp_states.h: kernel ABI (also printed by the inet_sock_set_state format)
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV",
}
# Drops Tulle's own tc programs made: the datapath already reports them with its own reason.
DUPLICATE_DROP_PREFIXES = ("TC_",)
# Reasons that are no loss when the packet carried no data: every close purges the FIN (or a
# bare ACK) still queued on the socket it ends.
NO_LOSS_WITHOUT_DATA = frozenset({"QUEUE_PURGE"})


@dataclass(frozen=True, slots=True)
class KernelRecord:
    """``struct trace_record`` as plain Python: addresses as dotted strings."""

    kind: int
    time_ns: int  # CLOCK_MONOTONIC
    saddr: str
    daddr: str
    sport: int
    dport: int
    pod_ip: str
    protocol: int = 6
    role: int = 0
    conn_id: int = 0
    start_ns: int = 0
    established_ns: int = 0
    srtt_sum_us: int = 0
    srtt_min_us: int = 0
    srtt_max_us: int = 0
    srtt_last_us: int = 0
    srtt_first_us: int = 0
    srtt_samples: int = 0
    retransmits: int = 0
    retrans_segments: int = 0
    netns: int = 0
    last_state: int = 0
    drop_reason: int = 0
    location: int = 0
    payload_len: int = 0
    tcp_flags: int = 0

    @classmethod
    def of(cls, leaf: Any) -> KernelRecord:
        """From BCC's ctypes ``struct trace_record`` (network-order addresses). One C-level
        attrgetter for every field: the agent runs this once per closed connection."""
        values = list(_LEAF_FIELDS(leaf))
        for i in _ADDRESS_FIELDS:
            values[i] = socket.inet_ntoa(values[i].to_bytes(4, "little"))
        return cls(*values)


_LEAF_FIELDS = operator.attrgetter(*(f.name for f in fields(KernelRecord)))
_ADDRESS_FIELDS = tuple(i for i, f in enumerate(fields(KernelRecord))
                        if f.name in ("saddr", "daddr", "pod_ip"))


@dataclass(frozen=True)
class Clock:
    """Turns the kernel's CLOCK_MONOTONIC stamps into Unix-epoch nanoseconds."""

    offset_ns: int  # realtime - monotonic, taken once when the reader starts

    def wall(self, monotonic_ns: int) -> int:
        return monotonic_ns + self.offset_ns


Symbolizer = Callable[[int], str]


def _l4(protocol: int, sport: int, dport: int, flags: int = 0) -> TCP | UDP | None:
    if protocol == socket.IPPROTO_TCP:
        return TCP(sport, dport, TCPFlags.from_bits(flags))
    if protocol == socket.IPPROTO_UDP:
        return UDP(sport, dport)
    return None


def _ip(src: str, dst: str) -> IP:
    # Dotted strings made by inet_ntoa (the tracer is IPv4 only): no address parse per record.
    return IP(src, dst, IPVersion.IPv6 if ":" in src else IPVersion.IPv4)


def tcp_trace(rec: KernelRecord) -> TcpTrace:
    established = rec.established_ns > 0
    srtt = None
    if rec.srtt_samples:
        srtt = SrttSummary(
            min=rec.srtt_min_us,
            mean=round(rec.srtt_sum_us / rec.srtt_samples),
            max=rec.srtt_max_us,
            last=rec.srtt_last_us,
            samples=rec.srtt_samples,
        )
    return TcpTrace(
        role=ROLES.get(rec.role, ""),
        connect_latency_ns=(
            rec.established_ns - rec.start_ns if established and rec.role == ROLE_CLIENT else 0
        ),
        handshake_rtt_us=rec.srtt_first_us,
        srtt_us=srtt,
        retransmits=rec.retransmits,
        retransmitted_segments=rec.retrans_segments,
        lifetime_ns=max(0, rec.time_ns - rec.start_ns) if rec.start_ns else 0,
        established=established,
        last_state=TCP_STATES.get(rec.last_state, str(rec.last_state) if rec.last_state else ""),
    )


def close_summary(t: TcpTrace) -> str:
    """The one-line Summary of a close record: what `tulle observe` prints."""
    parts = [f"TCP close ({t.role})"]
    if t.connect_latency_ns:
        parts.append(f"connect {format_duration(t.connect_latency_ns)}")
    elif not t.established:
        parts.append(f"never established ({t.last_state})")
    if t.srtt_us is not None:
        s = t.srtt_us
        parts.append(
            f"srtt {format_duration(s.min * 1000)}/{format_duration(s.mean * 1000)}"
            f"/{format_duration(s.max * 1000)}"
        )
    parts.append(f"retrans {t.retransmits}")
    return " ".join(parts)  # the lifetime is tulle.duration_ns, printed after the summary


def format_duration(ns: int) -> str:
    """Short human form: 850ns, 63µs, 4.2ms, 1.25s."""
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3g}ms"
    return f"{ns / 1_000_000_000:.3g}s"


def close_flow(rec: KernelRecord, clock: Clock) -> Flow:
    trace = tcp_trace(rec)
    client = rec.role != ROLE_SERVER
    src, dst = (rec.saddr, rec.daddr) if client else (rec.daddr, rec.saddr)
    sport, dport = (rec.sport, rec.dport) if client else (rec.dport, rec.sport)
    return Flow(
        time=clock.wall(rec.time_ns),
        verdict=Verdict.FORWARDED,
        ip=_ip(src, dst),
        l4=TCP(sport, dport),
        type=FlowType.L3_L4,
        is_reply=False,
        event_type=EventType(EVENT_TRACE_SOCK),
        traffic_direction=(
            TrafficDirection.EGRESS if client else TrafficDirection.INGRESS
        ),
        summary=close_summary(trace),
        tulle=TulleInfo(duration_ns=trace.lifetime_ns, tcp=trace, socket_id=rec.conn_id),
    )


def drop_flow(
    rec: KernelRecord, clock: Clock, reasons: dict[int, str], symbol: Symbolizer
) -> Flow | None:
    """The DROPPED flow for a kernel drop; None for drops the datapath already reported."""
    name = reasons.get(rec.drop_reason, f"REASON_{rec.drop_reason}")
    if name.startswith(DUPLICATE_DROP_PREFIXES):
        return None
    if name in NO_LOSS_WITHOUT_DATA and rec.payload_len == 0:
        return None
    location = symbol(rec.location) if rec.location else ""
    ingress = rec.daddr == rec.pod_ip
    return Flow(
        time=clock.wall(rec.time_ns),
        verdict=Verdict.DROPPED,
        drop_reason_desc=name,
        ip=_ip(rec.saddr, rec.daddr),
        l4=_l4(rec.protocol, rec.sport, rec.dport, rec.tcp_flags),
        type=FlowType.L3_L4,
        event_type=EventType(EVENT_DROP, 0),  # sub type 0: no Tulle datapath reason
        traffic_direction=TrafficDirection.INGRESS if ingress else TrafficDirection.EGRESS,
        summary=f"kernel drop {name}" + (f" at {location}" if location else ""),
        tulle=TulleInfo(
            socket_id=rec.conn_id,
            kernel_drop_reason=rec.drop_reason,
            kernel_drop_location=location,
        ),
    )


def to_flow(
    rec: KernelRecord, clock: Clock, reasons: dict[int, str], symbol: Symbolizer
) -> Flow | None:
    if rec.kind == KIND_CLOSE:
        return close_flow(rec, clock)
    if rec.kind == KIND_DROP:
        return drop_flow(rec, clock, reasons, symbol)
    return None
