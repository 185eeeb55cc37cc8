"""Kernel records into flows: orientation, the TCP summary, drops with the kernel's reason,
pod attribution by address and by network namespace, and the JSON round trip."""

from __future__ import annotations

import dataclasses

from agent.flows.codec import flow_to_json
from agent.flows.flow import TCP, SrttSummary, TCPFlags, TcpTrace, TrafficDirection, Verdict
from agent.flows.fromjson import flow_from_json
from agent.tracing.feed import attribute
from agent.tracing.records import KIND_DROP, close_flow, drop_flow, tcp_trace, to_flow

from .golden import (
    CLIENT_CLOSE,
    CLOCK,
    DROP,
    FAILED_CONNECT,
    INDEX,
    LOOPBACK_CLOSE,
    REASONS,
    SERVER_CLOSE,
    T,
    symbols,
)


def test_client_close_measurements() -> None:
    assert tcp_trace(CLIENT_CLOSE) == TcpTrace(
        role="client", connect_latency_ns=63_000, handshake_rtt_us=120,
        srtt_us=SrttSummary(min=80, mean=100, max=150, last=90, samples=10),
        retransmits=3, retransmitted_segments=5, lifetime_ns=2_000_000, established=True,
        last_state="FIN_WAIT1",
    )


def test_server_has_no_connect_latency_but_its_handshake_rtt() -> None:
    t = tcp_trace(SERVER_CLOSE)
    assert t.role == "server" and t.connect_latency_ns == 0 and t.handshake_rtt_us == 40
    assert t.established and t.lifetime_ns == 1_900_000


def test_failed_connect_is_not_established_and_has_no_rtt() -> None:
    t = tcp_trace(FAILED_CONNECT)
    assert not t.established and t.last_state == "SYN_SENT"
    assert t.connect_latency_ns == 0 and t.srtt_us is None


def test_both_sides_orient_client_to_server() -> None:
    client, server = close_flow(CLIENT_CLOSE, CLOCK), close_flow(SERVER_CLOSE, CLOCK)
    for f in (client, server):
        assert f.ip is not None and (f.ip.source, f.ip.destination) == ("10.244.1.2", "10.244.2.2")
        assert (f.l4.source_port, f.l4.destination_port) == (43512, 8080)  # type: ignore[union-attr]
        assert f.verdict == Verdict.FORWARDED and f.time == CLOCK.offset_ns + T
    assert client.traffic_direction == TrafficDirection.EGRESS
    assert server.traffic_direction == TrafficDirection.INGRESS
    assert client.summary == "TCP close (client) connect 63µs srtt 80µs/100µs/150µs retrans 3"


def test_drop_carries_the_kernel_reason_and_location() -> None:
    f = drop_flow(DROP, CLOCK, REASONS, symbols)
    assert f is not None and f.verdict == Verdict.DROPPED
    assert f.drop_reason_desc == "NO_SOCKET" and f.drop_reason == 0
    assert f.tulle is not None and f.tulle.kernel_drop_reason == 3
    assert f.tulle.kernel_drop_location == "tcp_v4_rcv+0x10"
    assert f.traffic_direction == TrafficDirection.INGRESS  # headed for the local pod
    assert f.event_type is not None and (f.event_type.type, f.event_type.sub_type) == (1, 0)


def test_unknown_reason_code_is_named_by_number() -> None:
    f = drop_flow(dataclasses.replace(DROP, drop_reason=999), CLOCK, REASONS, symbols)
    assert f is not None and f.drop_reason_desc == "REASON_999"


def test_drops_of_tulles_own_tc_programs_are_not_reported_twice() -> None:
    assert drop_flow(dataclasses.replace(DROP, drop_reason=70), CLOCK, REASONS, symbols) is None


def test_drop_keeps_the_tcp_flags_of_the_packet() -> None:
    f = drop_flow(DROP, CLOCK, REASONS, symbols)
    assert f is not None and f.l4 == TCP(40000, 9, TCPFlags.of("SYN"))


def test_a_purged_fin_is_no_loss_but_purged_data_is() -> None:
    fin = dataclasses.replace(DROP, drop_reason=105, tcp_flags=0x11, payload_len=0)
    assert drop_flow(fin, CLOCK, REASONS, symbols) is None
    data = dataclasses.replace(fin, payload_len=512)
    f = drop_flow(data, CLOCK, REASONS, symbols)
    assert f is not None and f.drop_reason_desc == "QUEUE_PURGE"


def test_unknown_record_kind_is_ignored() -> None:
    assert to_flow(dataclasses.replace(DROP, kind=9), CLOCK, REASONS, symbols) is None
    assert to_flow(DROP, CLOCK, REASONS, symbols) is not None and DROP.kind == KIND_DROP


def test_attribution_by_address_names_both_pods() -> None:
    f = attribute(close_flow(SERVER_CLOSE, CLOCK), SERVER_CLOSE, INDEX, "node2")
    assert f.source is not None and f.source.pod_name == "cli-1"
    assert f.destination is not None and f.destination.pod_name == "srv-1"
    assert f.node_name == "node2"


def test_loopback_socket_is_the_pod_of_its_network_namespace() -> None:
    f = attribute(close_flow(LOOPBACK_CLOSE, CLOCK), LOOPBACK_CLOSE, INDEX, "node1")
    assert f.source is not None and f.source.pod_name == "cli-1"
    assert f.destination is not None and f.destination.pod_name == ""  # 127.0.0.1: world


def test_drop_attributed_to_the_pod_on_its_side() -> None:
    flow = drop_flow(DROP, CLOCK, REASONS, symbols)
    assert flow is not None
    f = attribute(flow, DROP, INDEX, "node2")
    assert f.destination is not None and f.destination.pod_name == "srv-1"
    assert f.source is not None and f.source.pod_name == "cli-1"


def test_json_round_trip_keeps_the_trace() -> None:
    for rec in (CLIENT_CLOSE, SERVER_CLOSE, FAILED_CONNECT):
        f = attribute(close_flow(rec, CLOCK), rec, INDEX, "node1")
        data = flow_to_json(f)
        assert data["tulle"]["tcp"]["role"] in ("client", "server")
        assert "retransmits" in data["tulle"]["tcp"]  # zero is printed: it is an answer
        back = flow_from_json(data)
        assert back.tulle == f.tulle
    drop = drop_flow(DROP, CLOCK, REASONS, symbols)
    assert drop is not None and flow_from_json(flow_to_json(drop)).tulle == drop.tulle


def test_json_of_the_client_trace_is_golden() -> None:
    assert flow_to_json(close_flow(CLIENT_CLOSE, CLOCK))["tulle"] == {
        "duration_ns": 2_000_000,
        "socket_id": 77,
        "tcp": {
            "role": "client", "connect_latency_ns": 63000, "handshake_rtt_us": 120,
            "srtt_us": {"min": 80, "mean": 100, "max": 150, "last": 90, "samples": 10},
            "retransmits": 3, "retransmitted_segments": 5, "lifetime_ns": 2_000_000,
            "established": True, "last_state": "FIN_WAIT1",
        },
    }


def test_record_of_a_leaf_reads_every_field_and_the_addresses_in_network_order() -> None:
    import socket
    import struct
    from types import SimpleNamespace

    from agent.tracing.records import KernelRecord

    def be32(ip: str) -> int:  # what BCC's ctypes shows for a __be32 on this host
        return int(struct.unpack("<I", socket.inet_aton(ip))[0])

    values = {f.name: getattr(CLIENT_CLOSE, f.name) for f in dataclasses.fields(KernelRecord)}
    leaf = SimpleNamespace(**{**values, **{k: be32(values[k]) for k in ("saddr", "daddr",
                                                                          "pod_ip")}})
    assert KernelRecord.of(leaf) == CLIENT_CLOSE
    loopback = SimpleNamespace(**{**vars(leaf), "saddr": 0x0100007F})  # 127.0.0.1, LE view
    assert KernelRecord.of(loopback).saddr == "127.0.0.1"
