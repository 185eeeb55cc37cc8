"""Service entries served from outside the cluster: NodePort and LoadBalancer (pure).

bpf/lib/nodeport.h serves, on a node's uplink, every ``lb_services_v1`` entry flagged
``LB_F_EXTERNAL``. For each port of a NodePort or LoadBalancer Service this node gets:

- (this node's InternalIP, ``nodePort``, protocol), as kube-proxy and Cilium serve it;
- (each ``status.loadBalancer.ingress`` IP, ``port``, protocol) of a LoadBalancer Service.

With ``externalTrafficPolicy: Cluster`` these entries have the ClusterIP entry's backends and
Maglev table (the kernel SNATs toward a backend on another node). With ``Local`` they also
carry ``LB_F_LOCAL`` and list only this node's backends (those inside its pod CIDR), so the
client's address is kept; a node without one has an entry with no backends, which the kernel
drops with a reason rather than sending elsewhere (kube-proxy drops too). A node with no known
address gets no nodePort entries (LoadBalancer addresses still serve).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network

from agent.datapath.flags import LB_F_EXTERNAL, LB_F_LOCAL
from agent.datapath.maglev import CompactTable, maglev_tables
from agent.datapath.services import PROTOCOLS, Backends, NodeSite, ServiceEntry, ServiceKey
from agent.model.core import Service, ServiceType, TrafficPolicy
from agent.model.node import Node

EXTERNAL_TYPES = frozenset({ServiceType.NODE_PORT, ServiceType.LOAD_BALANCER})


def node_site(nodes: Iterable[Node], node_name: str) -> NodeSite:
    """This node's site from its Node object; an empty site without one (or with IPv6 only)."""
    node = next((n for n in nodes if n.metadata.name == node_name), None)
    if node is None:
        return NodeSite()
    address, cidr = node.status.address("InternalIP"), node.spec.pod_cidr
    ip = ip_address(address) if address else None
    net = ip_network(cidr, strict=False) if cidr else None
    return NodeSite(
        address=ip if isinstance(ip, IPv4Address) else None,
        pod_cidr=net if isinstance(net, IPv4Network) else None,
    )


def is_external(service: Service) -> bool:
    return service.spec.type in EXTERNAL_TYPES


def external_entries(
    service: Service, cluster: Sequence[ServiceEntry], site: NodeSite | None
) -> tuple[list[ServiceEntry], list[str]]:
    """The external entries of ``service`` derived from its ClusterIP entries ``cluster``
    (one per port, in port order), and notes on addresses that cannot be served."""
    if site is None or not is_external(service) or not cluster:
        return [], []
    local = service.spec.external_traffic_policy is TrafficPolicy.LOCAL
    flags = LB_F_EXTERNAL | (LB_F_LOCAL if local else 0)
    notes: list[str] = []
    lb_ips: list[IPv4Address] = []
    for text in service.load_balancer_ips:
        ip = ip_address(text)
        if isinstance(ip, IPv4Address):
            lb_ips.append(ip)
        else:
            meta = service.metadata
            notes.append(
                f"Service {meta.namespace}/{meta.name}: load balancer address {ip} is IPv6; "
                "only IPv4 is load-balanced"
            )
    out: list[ServiceEntry] = []
    for port, entry in zip(service.spec.ports, cluster, strict=True):
        protocol = PROTOCOLS[port.protocol]
        keys = [ServiceKey(ip, port.port, protocol) for ip in lb_ips]
        if port.node_port is not None and site.address is not None:
            keys.insert(0, ServiceKey(site.address, port.node_port, protocol))
        if not keys:
            continue
        served = _local(entry, site) if local else entry
        out.extend(replace(served, key=key, flags=flags) for key in keys)
    return out, notes


def _local(entry: ServiceEntry, site: NodeSite) -> ServiceEntry:
    """``entry`` with only the backends in this node's pod CIDR (none if it is unknown)."""
    cidr = site.pod_cidr
    kept = [b for b in entry.backends if cidr is not None and b.ip in cidr]
    if len(kept) == len(entry.backends):
        return entry
    backends = Backends(kept)
    if not kept:
        return replace(entry, backends=backends, table=CompactTable())
    ips, ports = array("I", backends.ips), array("H", backends.ports)
    (table,) = maglev_tables(ips, ports, [len(backends)])
    return replace(entry, backends=backends, table=CompactTable.of(table))
