"""Golden kernel records and the index that names their pods."""

from __future__ import annotations

import socket
import struct
from dataclasses import astuple, fields

from agent.datapath.cdefs import LIB_DIR, struct_type
from agent.flows.enrich import EndpointIndex
from agent.tracing.records import (
    KIND_CLOSE,
    KIND_DROP,
    ROLE_CLIENT,
    ROLE_SERVER,
    Clock,
    KernelRecord,
)

CLOCK = Clock(offset_ns=1_764_918_000_000_000_000)  # 2025-12-05 07:00:00 UTC at monotonic 0
T = 5_000_000_000  # monotonic ns of the close

INDEX = EndpointIndex.build(
    pods=[
        {"ip": "10.244.1.2", "namespace": "trc", "name": "cli-1", "labels": {"app": "cli"},
         "workload": {"kind": "Deployment", "name": "cli"}, "identity": 1001},
        {"ip": "10.244.2.2", "namespace": "trc", "name": "srv-1", "labels": {"app": "srv"},
         "workload": {"kind": "Deployment", "name": "srv"}, "identity": 1002},
    ],
    local_node="node1",
)

CLIENT_CLOSE = KernelRecord(
    kind=KIND_CLOSE, time_ns=T, saddr="10.244.1.2", daddr="10.244.2.2", sport=43512, dport=8080,
    pod_ip="10.244.1.2", role=ROLE_CLIENT, conn_id=77, start_ns=T - 2_000_000,
    established_ns=T - 2_000_000 + 63_000, srtt_sum_us=1000, srtt_min_us=80, srtt_max_us=150,
    srtt_last_us=90, srtt_first_us=120, srtt_samples=10, retransmits=3, retrans_segments=5,
    netns=4026532000, last_state=4,
)
# The server's socket of the same connection: local address first, as the kernel sees it.
SERVER_CLOSE = KernelRecord(
    kind=KIND_CLOSE, time_ns=T, saddr="10.244.2.2", daddr="10.244.1.2", sport=8080, dport=43512,
    pod_ip="10.244.2.2", role=ROLE_SERVER, conn_id=78, start_ns=T - 1_900_000,
    established_ns=T - 1_900_000, srtt_sum_us=400, srtt_min_us=40, srtt_max_us=40,
    srtt_last_us=40, srtt_first_us=40, srtt_samples=10, netns=4026532001, last_state=9,
)
FAILED_CONNECT = KernelRecord(
    kind=KIND_CLOSE, time_ns=T, saddr="10.244.1.2", daddr="10.244.2.2", sport=40000, dport=9,
    pod_ip="10.244.1.2", role=ROLE_CLIENT, conn_id=79, start_ns=T - 100_000, last_state=2,
)
# Loopback inside the client pod: attributed to it by its network namespace.
LOOPBACK_CLOSE = KernelRecord(
    kind=KIND_CLOSE, time_ns=T, saddr="127.0.0.1", daddr="127.0.0.1", sport=50000, dport=6379,
    pod_ip="10.244.1.2", role=ROLE_CLIENT, conn_id=80, start_ns=T - 1000, established_ns=T - 900,
    netns=4026532000, last_state=4,
)
DROP = KernelRecord(
    kind=KIND_DROP, time_ns=T, saddr="10.244.1.2", daddr="10.244.2.2", sport=40000, dport=9,
    pod_ip="10.244.2.2", protocol=6, drop_reason=3, location=0xFFFF0010, netns=4026532001,
    tcp_flags=0x02,
)
REASONS = {2: "NOT_SPECIFIED", 3: "NO_SOCKET", 70: "TC_INGRESS", 105: "QUEUE_PURGE"}


def symbols(address: int) -> str:
    return "tcp_v4_rcv+0x10" if address == 0xFFFF0010 else ""


# struct trace_record as the C header lays it out (the BPF tier checks BCC's agrees).
LAYOUT = struct_type(LIB_DIR / "conn_trace.h", "trace_record")
_ADDRESSES = ("saddr", "daddr", "pod_ip")


def raw(rec: KernelRecord) -> bytes:
    """The ring-buffer bytes the kernel writes for `rec` (`KernelRecord.of`'s inverse)."""
    leaf = LAYOUT()
    for f, value in zip(fields(KernelRecord), astuple(rec), strict=True):
        if f.name in _ADDRESSES:
            value = struct.unpack("<I", socket.inet_aton(value))[0]
        setattr(leaf, f.name, value)
    return bytes(leaf)
