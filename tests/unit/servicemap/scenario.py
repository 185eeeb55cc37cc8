"""A golden minute of the example app's traffic, as flows.

Over 60 s starting at `start`:

- the world calls svc frontend/web (served by frontend/web): 120 HTTP requests, 6 of them
  503, latencies 1..120 ms;
- frontend/web calls svc backend/catalog (served by backend/catalog): 300 HTTP requests,
  3 of them 500, latencies 0.1..30 ms; every request also has its REQUEST flow (ignored);
- frontend/web opens 20 TCP connections to svc backend/catalog, each seen at egress on
  node-1 and at ingress on node-2 (counted once);
- frontend/web tries data/db:5432 four times; policy drops every SYN;
- frontend/web sends 30 DNS queries to the world (two addresses, one world node), each
  with a closing flow lasting 1..30 ms;
- the host health-checks frontend/web 60 times over TCP.
"""

from __future__ import annotations

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
    TCPFlags,
    TrafficDirection,
    TulleInfo,
    Verdict,
    Workload,
)
from agent.flows.names import EVENT_DROP, EVENT_L7, EVENT_TRACE

SECOND = 1_000_000_000
MS = 1_000_000
WINDOW_S = 60.0

WEB = Endpoint(identity=1001, namespace="frontend", pod_name="web-3fa9c0d1e2-0b1c2",
               labels=("k8s:app=web",), workloads=(Workload("web", "Deployment"),))
CATALOG = Endpoint(identity=1002, namespace="backend", pod_name="catalog-5b7d9c1a2f-9e8d7",
                   labels=("k8s:app=catalog",), workloads=(Workload("catalog", "Deployment"),))
DB = Endpoint(identity=1003, namespace="data", pod_name="db-0", labels=("k8s:app=db",))
WORLD = Endpoint(identity=2, labels=("reserved:world",))
HOST = Endpoint(identity=1, labels=("reserved:host",))
WEB_SVC = Service("web", "frontend")
CATALOG_SVC = Service("catalog", "backend")
SYN = TCPFlags(SYN=True)


def _response(t: int, client: Endpoint, server: Endpoint, svc: Service, code: int,
              latency_ns: int, node: str = "node-1") -> Flow:
    return Flow(
        time=t, verdict=Verdict.FORWARDED, ip=IP("10.1.1.7", "10.1.0.5"), l4=TCP(8080, 40000),
        source=server, destination=client, type=FlowType.L7, node_name=node, is_reply=True,
        l7=Layer7(L7Type.RESPONSE, latency_ns, HTTP(code, "GET", "http://x/", "HTTP/1.1")),
        event_type=EventType(EVENT_L7, 0), source_service=svc,
        traffic_direction=TrafficDirection.EGRESS,
    )


def _request(t: int, client: Endpoint, server: Endpoint, svc: Service) -> Flow:
    return Flow(
        time=t, verdict=Verdict.FORWARDED, ip=IP("10.1.0.5", "10.1.1.7"), l4=TCP(40000, 8080),
        source=client, destination=server, type=FlowType.L7, node_name="node-1",
        is_reply=False,
        l7=Layer7(L7Type.REQUEST, 0, HTTP(0, "GET", "http://x/", "HTTP/1.1")),
        event_type=EventType(EVENT_L7, 0), destination_service=svc,
        traffic_direction=TrafficDirection.EGRESS,
    )


def _l4(t: int, src: Endpoint, dst: Endpoint, l4: TCP | UDP, *, ips: tuple[str, str] =
        ("10.1.0.5", "10.2.0.9"), svc: Service | None = None, dropped: bool = False,
        direction: TrafficDirection = TrafficDirection.EGRESS, node: str = "node-1",
        duration_ns: int = 0) -> Flow:
    return Flow(
        time=t,
        verdict=Verdict.DROPPED if dropped else Verdict.FORWARDED,
        drop_reason=133 if dropped else 0,
        drop_reason_desc="POLICY_DENIED" if dropped else "",
        ip=IP(*ips), l4=l4, source=src, destination=dst, type=FlowType.L3_L4, node_name=node,
        is_reply=False,
        event_type=EventType(EVENT_DROP, 133) if dropped else EventType(EVENT_TRACE, 5),
        destination_service=svc, traffic_direction=direction,
        tulle=TulleInfo(duration_ns=duration_ns, bytes_sent=100 if duration_ns else 0,
                        bytes_received=400 if duration_ns else 0) if duration_ns else None,
    )


def minute(start: int) -> list[Flow]:
    flows: list[Flow] = []
    for i in range(120):
        t = start + i * SECOND // 2
        flows.append(_response(t, WORLD, WEB, WEB_SVC, 503 if i % 20 == 0 else 200,
                               (i + 1) * MS))
    for i in range(300):
        t = start + i * SECOND // 5
        flows.append(_request(t, WEB, CATALOG, CATALOG_SVC))
        flows.append(_response(t + MS, WEB, CATALOG, CATALOG_SVC, 500 if i % 100 == 0 else 200,
                               (i + 1) * 100_000))
    for i in range(20):
        t = start + i * 3 * SECOND
        syn = TCP(41000 + i, 8080, SYN)
        flows.append(_l4(t, WEB, CATALOG, syn, svc=CATALOG_SVC))
        flows.append(_l4(t + 1000, WEB, CATALOG, syn, svc=CATALOG_SVC,
                         direction=TrafficDirection.INGRESS, node="node-2"))
    for i in range(4):
        flows.append(_l4(start + i * SECOND, WEB, DB, TCP(42000, 5432, SYN), dropped=True,
                         direction=TrafficDirection.INGRESS, node="node-2"))
    for i in range(30):
        t = start + i * 2 * SECOND
        ips = ("10.1.0.5", "1.1.1.1" if i % 2 else "8.8.8.8")
        flows.append(_l4(t, WEB, WORLD, UDP(53000 + i, 53), ips=ips))
        flows.append(_l4(t + (i + 1) * MS, WEB, WORLD, UDP(53000 + i, 53), ips=ips,
                         duration_ns=(i + 1) * MS))
    for i in range(60):
        flows.append(_l4(start + i * SECOND, HOST, WEB, TCP(43000 + i, 8080, SYN),
                         ips=("10.1.0.1", "10.1.0.5"), direction=TrafficDirection.INGRESS))
    flows.sort(key=lambda f: f.time)
    return flows
