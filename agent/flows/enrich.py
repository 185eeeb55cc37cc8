"""Flow enrichment at ingestion: the one place that names the endpoints of a flow.

The datapath and the waypoint know addresses and ports; `enrich` fills in what users filter
and read by: pod, namespace, labels (Cilium style, "k8s:app=web"), workload, security
identity, service and node. It looks addresses up in an `EndpointIndex`, built from plain
dicts so that it does not depend on the model's classes::

    index = EndpointIndex.build(
        pods=[{"ip": "10.1.0.5", "namespace": "shop", "name": "web-1", "labels": {"app": "web"},
               "workload": {"kind": "Deployment", "name": "web"}, "identity": 12345,
               "node": "node-1", "service_account": "web"}],
        services=[{"cluster_ip": "10.96.0.10", "port": 80, "namespace": "shop", "name": "web"}],
        nodes=[{"ip": "172.18.0.2", "name": "node-1"}],
        local_node="node-1",
        trust_domain="cluster.local",
    )
    flow = enrich(flow, index)

A pod's endpoint carries its SPIFFE ID, ``spiffe://<trust-domain>/ns/<ns>/sa/<sa>`` (the
ServiceAccount ``default`` when unset, as admission sets it). Addresses that are neither
pods nor nodes get the reserved ``world`` identity; they, hosts and nodes have no SPIFFE ID.
Values the producer already set (a pod name, an identity, a service) are kept.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.flows.flow import TCP, UDP, Endpoint, Flow, Service, TulleInfo, Workload
from agent.flows.names import IDENTITY_HOST, IDENTITY_REMOTE_NODE, IDENTITY_WORLD
from identity.spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId, workload_id

NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
_WORLD = Endpoint(identity=IDENTITY_WORLD, labels=("reserved:world",))
_EMPTY = Endpoint()


def pod_labels(namespace: str, labels: Mapping[str, str]) -> tuple[str, ...]:
    """Cilium-style labels of a pod: its labels plus the namespace label, sorted."""
    out = {f"k8s:{k}={v}" for k, v in labels.items()}
    out.add(f"k8s:{NAMESPACE_LABEL}={namespace}")
    return tuple(sorted(out))


def derived_identity(labels: tuple[str, ...]) -> int:
    """A stable identity (>= 256) from a label set, for pods given without one."""
    return 256 + zlib.crc32("\n".join(labels).encode()) % (0xFFFF - 256)


@dataclass(frozen=True)
class EndpointIndex:
    """Lookup tables from addresses to endpoints, services and nodes."""

    pods: Mapping[str, Endpoint] = field(default_factory=dict)  # pod IP -> endpoint
    services: Mapping[tuple[str, int], Service] = field(default_factory=dict)
    service_ips: Mapping[str, Service] = field(default_factory=dict)  # any port
    nodes: Mapping[str, str] = field(default_factory=dict)  # node IP -> node name
    local_node: str = ""
    # Gateway listener (address, port) -> ((IP protocol, "namespace/route"), ...): the
    # TCPRoute or UDPRoute the kernel serves it for (a TCP and a UDP listener may share a
    # port number, so the flow's own protocol picks).
    routes: Mapping[tuple[str, int], tuple[tuple[int, str], ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        pods: Iterable[Mapping[str, Any]] = (),
        services: Iterable[Mapping[str, Any]] = (),
        nodes: Iterable[Mapping[str, Any]] = (),
        local_node: str = "",
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        routes: Iterable[Mapping[str, Any]] = (),
    ) -> EndpointIndex:
        """From pods ``{ip|ips, namespace, name, labels, workload{kind,name}, identity, node,
        id, service_account}``, services ``{cluster_ip, port, namespace, name}``, nodes
        ``{ip, name}`` and the listeners TCPRoutes and UDPRoutes serve ``{vip, port,
        protocol (6 or 17), namespace, name}``; optional keys may be missing. A bad
        `trust_domain` raises SpiffeIdError."""
        SpiffeId(trust_domain)  # checked once, so a bad one fails even with no pods
        by_ip: dict[str, Endpoint] = {}
        spiffe_ids: dict[tuple[str, str | None], str] = {}  # few (namespace, SA) pairs
        for pod in pods:
            ns = pod.get("namespace", "default")
            labels = pod_labels(ns, pod.get("labels") or {})
            wl = pod.get("workload")
            sa = pod.get("service_account")
            spiffe_id = spiffe_ids.get((ns, sa))
            if spiffe_id is None:
                spiffe_id = spiffe_ids[(ns, sa)] = str(workload_id(trust_domain, ns, sa))
            ep = Endpoint(
                id=int(pod.get("id") or 0),
                identity=int(pod.get("identity") or derived_identity(labels)),
                namespace=ns,
                labels=labels,
                pod_name=pod.get("name", ""),
                workloads=(Workload(name=wl["name"], kind=wl["kind"]),) if wl else (),
                spiffe_id=spiffe_id,
            )
            for ip in pod.get("ips") or [pod.get("ip")]:
                if ip:
                    by_ip[ip] = ep
        by_port: dict[tuple[str, int], Service] = {}
        by_svc_ip: dict[str, Service] = {}
        for svc in services:
            s = Service(name=svc["name"], namespace=svc.get("namespace", "default"))
            by_port[(svc["cluster_ip"], int(svc.get("port") or 0))] = s
            by_svc_ip.setdefault(svc["cluster_ip"], s)
        node_ips = {n["ip"]: n["name"] for n in nodes if n.get("ip")}
        by_listener: dict[tuple[str, int], tuple[tuple[int, str], ...]] = {}
        for r in routes:
            where = (r["vip"], int(r["port"]))
            named = (int(r["protocol"]), f"{r['namespace']}/{r['name']}")
            by_listener[where] = (*by_listener.get(where, ()), named)
        return cls(by_ip, by_port, by_svc_ip, node_ips, local_node, by_listener)

    def endpoint(self, ip: str) -> Endpoint:
        """The endpoint at `ip`: a pod, this node (host), another node, or the world."""
        ep = self.pods.get(ip)
        if ep is not None:
            return ep
        node = self.nodes.get(ip)
        if node is not None:
            if node == self.local_node:
                return Endpoint(identity=IDENTITY_HOST, labels=("reserved:host",))
            return Endpoint(identity=IDENTITY_REMOTE_NODE, labels=("reserved:remote-node",))
        return _WORLD

    def service(self, ip: str, port: int) -> Service | None:
        return self.services.get((ip, port)) or (
            self.service_ips.get(ip) if port == 0 else None
        )


@dataclass(frozen=True, slots=True)
class Peers:
    """What an `EndpointIndex` says about one address pair: computed once per pair and index
    version by the datapath's event reader, applied to every flow of that pair."""

    source: Endpoint
    destination: Endpoint
    source_service: Service | None = None
    destination_service: Service | None = None
    node_name: str = ""
    routes: tuple[tuple[int, str], ...] = ()
    """The TCPRoute/UDPRoute behind the destination, by IP protocol (EndpointIndex.routes):
    the connection's, so a reply flow keeps it."""

    def flipped(self) -> Peers:
        """The same pair seen from a reply: source and destination (and services) swapped."""
        return Peers(self.destination, self.source, self.destination_service,
                     self.source_service, self.node_name, self.routes)


def peers(index: EndpointIndex, src: str, dst: str, sport: int | None, dport: int,
          node_name: str = "") -> Peers:
    """The endpoints, services (by address and port) and node for a flow src -> dst;
    `sport` None: the source is known not to be a service."""
    return Peers(index.endpoint(src), index.endpoint(dst),
                 index.service(src, sport) if sport is not None else None,
                 index.service(dst, dport), node_name or index.local_node,
                 index.routes.get((dst, dport), ()))


def _merge(have: Endpoint | None, found: Endpoint) -> Endpoint:
    if have is None or have == _EMPTY:
        return found
    if have.pod_name or found is _WORLD:
        if (found.spiffe_id and not have.spiffe_id and have.pod_name == found.pod_name
                and have.namespace == found.namespace):
            return dataclasses.replace(have, spiffe_id=found.spiffe_id)  # same pod
        return have  # the producer knew better
    return dataclasses.replace(found, id=have.id or found.id,
                               identity=have.identity or found.identity,
                               spiffe_id=have.spiffe_id or found.spiffe_id)


def apply_peers(flow: Flow, found: Peers) -> Flow:
    """The flow with what `found` names filled in; values the producer set are kept."""
    changes: dict[str, Any] = {}
    src = _merge(flow.source, found.source)
    if src is not flow.source:
        changes["source"] = src
    dst = _merge(flow.destination, found.destination)
    if dst is not flow.destination:
        changes["destination"] = dst
    if flow.destination_service is None and found.destination_service is not None:
        changes["destination_service"] = found.destination_service
    if flow.source_service is None and found.source_service is not None:
        changes["source_service"] = found.source_service
    if not flow.node_name and found.node_name:
        changes["node_name"] = found.node_name
    if found.routes and (route := _route_of(flow, found.routes)):
        changes["tulle"] = dataclasses.replace(flow.tulle or TulleInfo(), route=route)
    return _evolve(flow, changes) if changes else flow


def _route_of(flow: Flow, routes: tuple[tuple[int, str], ...]) -> str:
    """The route for the flow's protocol, unless the producer named one (the waypoint's
    HTTPRoute); "" for none."""
    if flow.tulle is not None and flow.tulle.route:
        return ""
    protocol = 6 if isinstance(flow.l4, TCP) else 17 if isinstance(flow.l4, UDP) else 0
    return next((name for p, name in routes if p == protocol), "")


def enrich(flow: Flow, index: EndpointIndex, node_name: str = "") -> Flow:
    """The flow with endpoints, services and node filled from `index` (pure)."""
    if flow.ip is None:
        node = node_name or index.local_node
        if not flow.node_name and node:
            return _evolve(flow, {"node_name": node})
        return flow
    sport = dport = 0
    if isinstance(flow.l4, TCP | UDP):
        sport, dport = flow.l4.source_port, flow.l4.destination_port
    return apply_peers(flow, peers(index, flow.ip.source, flow.ip.destination, sport, dport,
                                   node_name))


_FLOW_FIELDS = tuple(f.name for f in dataclasses.fields(Flow))
_set = object.__setattr__


def _evolve(flow: Flow, changes: dict[str, Any]) -> Flow:
    """dataclasses.replace without re-running __init__: a third of the cost, and the
    changed values here are already the right types."""
    new = object.__new__(Flow)
    for name in _FLOW_FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(flow, name))
    return new
