"""Tunnel events and the agent's index for them: shared by the tunnel flow tests."""

from __future__ import annotations

import calendar

from agent.flows.enrich import EndpointIndex
from agent.flows.tunnelrecord import TunnelEvent

# Dec 6 2026 03:00:00.250 UTC
T1 = calendar.timegm((2026, 12, 6, 3, 0, 0, 0, 0, 0)) * 1_000_000_000 + 250_000_000

WEB_ID = "spiffe://cluster.local/ns/shop/sa/web"
DB_ID = "spiffe://cluster.local/ns/data/sa/db"
EVIL_ID = "spiffe://cluster.local/ns/shop/sa/intruder"

ACCEPTED = TunnelEvent(
    time_ns=T1,
    side="server",
    verdict="FORWARDED",
    drop_reason="",
    source=("10.244.1.5", 43512),
    destination=("10.244.2.7", 5432),
    source_spiffe_id=WEB_ID,
    destination_spiffe_id=DB_ID,
    peer=("172.18.0.2", 15008),
)
# The client's waypoint refused the server's certificate: it named another identity.
REFUSED = TunnelEvent(
    time_ns=T1 + 1_000_000,
    side="client",
    verdict="DROPPED",
    drop_reason="MTLS_WRONG_IDENTITY",
    source=("10.244.1.5", 43514),
    destination=("10.244.2.7", 5432),
    source_spiffe_id=WEB_ID,
    destination_spiffe_id=EVIL_ID,
    peer=("172.18.0.3", 15008),
    detail="peer certificate names spiffe://cluster.local/ns/shop/sa/intruder",
)
UNKNOWN_CA = TunnelEvent(
    time_ns=T1 + 2_000_000,
    side="server",
    verdict="DROPPED",
    drop_reason="MTLS_UNKNOWN_CA",
    source=("10.244.1.5", 43516),
    destination=("10.244.2.7", 5432),
    source_spiffe_id="",
    destination_spiffe_id=DB_ID,
    peer=("172.18.0.2", 15008),
    detail="certificate verify failed: unable to get local issuer certificate",
)


def index() -> EndpointIndex:
    return EndpointIndex.build(
        pods=[
            {
                "ip": "10.244.1.5",
                "namespace": "shop",
                "name": "web-0",
                "labels": {"app": "web"},
                "workload": {"kind": "Deployment", "name": "web"},
                "identity": 12345,
                "node": "node-1",
                "service_account": "web",
            },
            {
                "ip": "10.244.2.7",
                "namespace": "data",
                "name": "db-0",
                "labels": {"app": "db"},
                "workload": {"kind": "StatefulSet", "name": "db"},
                "identity": 23456,
                "node": "node-2",
                "service_account": "db",
            },
        ],
        nodes=[{"ip": "172.18.0.2", "name": "node-1"}, {"ip": "172.18.0.3", "name": "node-2"}],
        local_node="node-2",
    )
