"""Golden flows shared by the flow and observer tests."""

from __future__ import annotations

import calendar

from agent.flows.flow import (
    HTTP,
    IP,
    TCP,
    UDP,
    Endpoint,
    EventType,
    Flow,
    FlowType,
    L7Type,
    Layer7,
    Service,
    SrttSummary,
    TCPFlags,
    TcpTrace,
    TrafficDirection,
    TulleInfo,
    Verdict,
    Workload,
)
from agent.flows.names import EVENT_DROP, EVENT_L7, EVENT_TRACE, EVENT_TRACE_SOCK

# Nov 22 2023 10:00:00.123 UTC
T0 = calendar.timegm((2023, 11, 22, 10, 0, 0, 0, 0, 0)) * 1_000_000_000 + 123_000_000

WEB = Endpoint(
    id=101,
    identity=12345,
    namespace="shop",
    labels=("k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop", "k8s:tier=front"),
    pod_name="web-1",
    workloads=(Workload("web", "Deployment"),),
)
ECHO = Endpoint(
    id=202,
    identity=23456,
    namespace="shop",
    labels=("k8s:app=echo", "k8s:io.kubernetes.pod.namespace=shop"),
    pod_name="echo-2",
    workloads=(Workload("echo", "Deployment"),),
)
DB = Endpoint(
    identity=34567,
    namespace="data",
    labels=("k8s:app=db", "k8s:io.kubernetes.pod.namespace=data"),
    pod_name="db-0",
    workloads=(Workload("db", "StatefulSet"),),
)
WORLD = Endpoint(identity=2, labels=("reserved:world",))


def syn(t: int = T0, **kw: object) -> Flow:
    base: dict[str, object] = dict(
        time=t,
        uuid="0b1c5a2e-0000-4000-8000-000000000001",
        verdict=Verdict.FORWARDED,
        ip=IP("10.1.0.5", "10.1.1.7"),
        l4=TCP(43512, 8080, TCPFlags(SYN=True)),
        source=WEB,
        destination=ECHO,
        type=FlowType.L3_L4,
        node_name="node-1",
        is_reply=False,
        event_type=EventType(EVENT_TRACE, 0),
        destination_service=Service("echo", "shop"),
        traffic_direction=TrafficDirection.EGRESS,
        trace_observation_point="TO_ENDPOINT",
    )
    base.update(kw)
    return Flow(**base)  # type: ignore[arg-type]


def synack(t: int = T0 + 1_000_000) -> Flow:
    return syn(
        t,
        uuid="0b1c5a2e-0000-4000-8000-000000000002",
        ip=IP("10.1.1.7", "10.1.0.5"),
        l4=TCP(8080, 43512, TCPFlags(SYN=True, ACK=True)),
        source=ECHO,
        destination=WEB,
        destination_service=None,
        is_reply=True,
        traffic_direction=TrafficDirection.INGRESS,
    )


def policy_drop(t: int = T0 + 2_000_000) -> Flow:
    return Flow(
        time=t,
        uuid="0b1c5a2e-0000-4000-8000-000000000003",
        verdict=Verdict.DROPPED,
        drop_reason=133,
        drop_reason_desc="POLICY_DENIED",
        ip=IP("10.1.0.5", "10.2.0.9"),
        l4=TCP(43600, 5432, TCPFlags(SYN=True)),
        source=WEB,
        destination=DB,
        type=FlowType.L3_L4,
        node_name="node-2",
        is_reply=False,
        event_type=EventType(EVENT_DROP, 133),
        traffic_direction=TrafficDirection.INGRESS,
        tulle=TulleInfo(drop_file="bpf_lxc.c", drop_line=412, rule="data/deny-all"),
    )


def http_request(t: int = T0 + 3_000_000, path: str = "/hello") -> Flow:
    return Flow(
        time=t,
        uuid="0b1c5a2e-0000-4000-8000-000000000004",
        verdict=Verdict.FORWARDED,
        ip=IP("10.1.0.5", "10.1.1.7"),
        l4=TCP(43512, 8080),
        source=WEB,
        destination=ECHO,
        type=FlowType.L7,
        node_name="node-1",
        l7=Layer7(L7Type.REQUEST, 0, HTTP(0, "GET", f"http://echo{path}", "HTTP/1.1")),
        is_reply=False,
        event_type=EventType(EVENT_L7, 0),
        destination_service=Service("echo", "shop"),
        traffic_direction=TrafficDirection.EGRESS,
        tulle=TulleInfo(route="shop/echo-route", rule="0"),
    )


def http_response(t: int = T0 + 6_000_000, code: int = 200, path: str = "/hello") -> Flow:
    return Flow(
        time=t,
        uuid="0b1c5a2e-0000-4000-8000-000000000005",
        verdict=Verdict.FORWARDED,
        ip=IP("10.1.1.7", "10.1.0.5"),
        l4=TCP(8080, 43512),
        source=ECHO,
        destination=WEB,
        type=FlowType.L7,
        node_name="node-1",
        l7=Layer7(L7Type.RESPONSE, 3_000_000, HTTP(code, "GET", f"http://echo{path}", "HTTP/1.1")),
        is_reply=True,
        event_type=EventType(EVENT_L7, 0),
        source_service=Service("echo", "shop"),
        traffic_direction=TrafficDirection.EGRESS,
        tulle=TulleInfo(route="shop/echo-route", rule="0", backend="10.1.1.7:8080"),
    )


def dns_udp(t: int = T0 + 7_000_000) -> Flow:
    return Flow(
        time=t,
        verdict=Verdict.FORWARDED,
        ip=IP("10.1.0.5", "1.1.1.1"),
        l4=UDP(53000, 53),
        source=WEB,
        destination=WORLD,
        type=FlowType.L3_L4,
        node_name="node-1",
        event_type=EventType(EVENT_TRACE, 11),
        traffic_direction=TrafficDirection.EGRESS,
        tulle=TulleInfo(bytes_sent=64, bytes_received=1500, duration_ns=2_500_000),
    )


def all_samples() -> list[Flow]:
    return [syn(), synack(), policy_drop(), http_request(), http_response(), dns_udp()]


def tcp_close(t: int = T0 + 9_000_000, connect_ns: int = 120_000, srtt_mean_us: int = 40,
              retransmits: int = 2, client: Endpoint = WEB, server: Endpoint = ECHO) -> Flow:
    """A kernel tracer close record: the client pod's side of web -> echo."""
    trace = TcpTrace(role="client", connect_latency_ns=connect_ns, handshake_rtt_us=35,
                     srtt_us=SrttSummary(min=20, mean=srtt_mean_us, max=90, last=30, samples=12),
                     retransmits=retransmits, retransmitted_segments=retransmits,
                     lifetime_ns=5_000_000, established=connect_ns > 0, last_state="FIN_WAIT2")
    return Flow(
        time=t, verdict=Verdict.FORWARDED, node_name="node-1",
        ip=IP("10.0.1.5", "10.0.2.7"), l4=TCP(40000, 8080), source=client, destination=server,
        type=FlowType.L3_L4, is_reply=False, event_type=EventType(EVENT_TRACE_SOCK),
        traffic_direction=TrafficDirection.EGRESS,
        tulle=TulleInfo(duration_ns=5_000_000, tcp=trace, socket_id=77),
    )


def kernel_drop(t: int = T0 + 10_000_000, reason: str = "NO_SOCKET", code: int = 3) -> Flow:
    """A kernel drop (skb:kfree_skb) of a SYN to a closed port on echo."""
    return Flow(
        time=t, verdict=Verdict.DROPPED, drop_reason_desc=reason, node_name="node-1",
        ip=IP("10.0.1.5", "10.0.2.7"), l4=TCP(40001, 9999, TCPFlags.of("SYN")),
        source=WEB, destination=ECHO, type=FlowType.L3_L4,
        event_type=EventType(EVENT_DROP, 0), traffic_direction=TrafficDirection.INGRESS,
        summary=f"kernel drop {reason} at tcp_v4_rcv+0x1a",
        tulle=TulleInfo(socket_id=78, kernel_drop_reason=code,
                        kernel_drop_location="tcp_v4_rcv+0x1a"),
    )
