"""The flow enricher's index from the datapath's plan (pure): which pod, Service, node and
route each address and port of a flow names, as this node's agent sees them."""

from __future__ import annotations

from agent.datapath.desired import ClusterView, DesiredDatapath
from agent.flows.enrich import DEFAULT_TRUST_DOMAIN, EndpointIndex


def endpoint_index(view: ClusterView, desired: DesiredDatapath, node: str,
                   trust_domain: str = DEFAULT_TRUST_DOMAIN) -> EndpointIndex:
    identities = {str(ip): identity for ip, identity in desired.ipcache.items()}
    pods = []
    for pod in view.pods:
        if not pod.status.pod_ip or pod.spec.host_network:
            continue  # a hostNetwork pod's address is its node's: its flows name the host
        owner = next((r for r in pod.metadata.owner_references if r.controller), None)
        pods.append(
            {
                "ip": pod.status.pod_ip,
                "namespace": pod.metadata.namespace,
                "name": pod.metadata.name,
                "labels": dict(pod.metadata.labels),
                "identity": identities.get(pod.status.pod_ip, 0),
                "node": pod.spec.node_name or "",
                "workload": {"kind": owner.kind, "name": owner.name} if owner else None,
                "service_account": pod.spec.service_account,
            }
        )
    services = [
        {"cluster_ip": str(key.vip), "port": key.port, "namespace": e.namespace, "name": e.name}
        for key, e in desired.services.entries.items()
    ]
    nodes = [
        {"ip": address, "name": n.metadata.name}
        for n in view.nodes
        for address in [a.address for a in n.status.addresses if a.type == "InternalIP"]
    ]
    routes = [
        {"vip": str(key.vip), "port": key.port, "protocol": key.protocol,
         "namespace": namespace, "name": name}
        for key, (_kind, namespace, name) in desired.l4_routes.items()
    ]
    return EndpointIndex.build(pods=pods, services=services, nodes=nodes, local_node=node,
                               trust_domain=trust_domain, routes=routes)
