"""What the ingestion benchmark feeds the datapath and the agent (pure).

One endpoint sits at ifindex 1 (lo stands in for its veth, as in tests/bpf) with address
`ENDPOINT_IP`. The packet leaves it with a neighbour's address as its source, so
`tulle_from_pod` drops it as INVALID_SOURCE_IP and emits one DROP flow event per run; the
conntrack is never touched, so every run of a repeated test run emits again. Both addresses
in the event are pods the enrichment index knows, so enrichment does its full work (two pod
lookups, the service lookups, the merge into a new Flow).
"""

from __future__ import annotations

from typing import Any

from agent.flows.enrich import EndpointIndex

NODE = "n1"
ENDPOINT_IFINDEX = 1
ENDPOINT_IP = "10.244.1.2"
ENDPOINT_IDENTITY = 300
SPOOFED_SRC = "10.244.1.3"  # another pod on the node: "spoofing a neighbour"
DESTINATION = "10.244.2.9"  # a pod on the other node
EXPECTED_REASON = "INVALID_SOURCE_IP"


def spoofed_packet() -> bytes:
    """Ethernet / IPv4 / TCP SYN from SPOOFED_SRC:40000 to DESTINATION:80."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    pkt = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
           / IP(src=SPOOFED_SRC, dst=DESTINATION) / TCP(sport=40000, dport=80, flags="S"))
    return bytes(pkt)


def endpoint_index(pods_per_node: int = 100, services: int = 50) -> EndpointIndex:
    """A small cluster: two nodes, `pods_per_node` pods each (the event's two addresses
    among them), `services` services."""
    pods: list[dict[str, Any]] = []
    for node, subnet in (("n1", 1), ("n2", 2)):
        for i in range(2, 2 + pods_per_node):
            app = f"app{i % 10}"
            pods.append({
                "ip": f"10.244.{subnet}.{i}", "namespace": f"ns{i % 4}",
                "name": f"{app}-{subnet}-{i}", "labels": {"app": app, "tier": "web"},
                "identity": 1000 + i % 10, "node": node,
                "workload": {"kind": "Deployment", "name": app},
            })
    svcs = [{"cluster_ip": f"10.96.0.{10 + i}", "port": 80, "namespace": f"ns{i % 4}",
             "name": f"svc{i}"} for i in range(services)]
    nodes = [{"ip": "172.18.0.2", "name": "n1"}, {"ip": "172.18.0.3", "name": "n2"}]
    return EndpointIndex.build(pods=pods, services=svcs, nodes=nodes, local_node=NODE)
