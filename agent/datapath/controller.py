"""The agent's datapath loop: store changes -> desired state -> maps; ring buffer -> flows.

Threads: `sync` runs on the watch thread after each change; `run_events` drains the ring
buffer into the flow ring (`agent.datapath.eventreader`); `run_gc` expires conntrack entries
and reports connections that ended without a close.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pyroute2 import IPRoute

from agent.datapath.applier import Applier
from agent.datapath.desired import (
    ClusterView,
    DesiredDatapath,
    desired_datapath,
    l7_keys,
    view_of,
)
from agent.datapath.eventreader import EventReader
from agent.datapath.flowevents import EventDecoder
from agent.datapath.programs import Datapath
from agent.flows.enrich import EndpointIndex, enrich
from agent.flows.ingest import FlowIngest
from agent.model.cache import ModelCache
from l7proxy.routing import RouteCompiler

log = logging.getLogger("tulle.datapath")
WATCHED_KINDS = (
    "Node",
    "Namespace",
    "Pod",
    "Service",
    "EndpointSlice",
    "NetworkPolicy",
    "HTTPRoute",
    "Gateway",
    "GatewayClass",
    "ReferenceGrant",
    "Secret",
)
CT_EGRESS, CT_SERVICE, CT_F_CLOSED = 1, 3, 0x4  # bpf/lib/conntrack.h
CLOSED_GRACE_NS = 10 * 10**9
UDP_IDLE_NS = 60 * 10**9
TCP_IDLE_NS = 6 * 3600 * 10**9


def endpoint_index(view: ClusterView, desired: DesiredDatapath, node: str) -> EndpointIndex:
    identities = {str(ip): identity for ip, identity in desired.ipcache.items()}
    pods = []
    for pod in view.pods:
        if not pod.status.pod_ip:
            continue
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
    return EndpointIndex.build(pods=pods, services=services, nodes=nodes, local_node=node)


class DatapathController:
    def __init__(
        self,
        node: str,
        dp: Datapath,
        ring: FlowIngest,
        waypoint: tuple[ipaddress.IPv4Address, int] | None = None,
    ) -> None:
        self.node = node
        self.waypoint = waypoint  # from the agent's configuration, never from the cluster
        self.dp = dp
        self.ring = ring
        self.ipr = IPRoute()
        self.applier = Applier(dp, self.ipr)
        self.models = ModelCache()
        self.routes = RouteCompiler()
        self.decoder = EventDecoder(node)
        self.index = EndpointIndex(local_node=node)
        self.lock = threading.Lock()
        self.last_sync_ms = 0.0
        self.errors: tuple[str, ...] = ()
        self.events = EventReader(self.decoder, ring, lambda: self.index)

    # -- desired state ---------------------------------------------------------------------
    def sync(self, objects: Iterable[Mapping[str, Any]]) -> None:
        started = time.monotonic()
        view = view_of(self.models.decode_all(objects, WATCHED_KINDS))
        with self.lock:
            desired = desired_datapath(
                view,
                self.node,
                self.applier.applied.services,
                l7_keys(view, self.routes),
                self.waypoint,
            )
            self.applier.apply(desired)
            self.index = endpoint_index(view, desired, self.node)
        if desired.errors != self.errors:
            for error in desired.errors:
                log.warning("datapath: %s", error)
            self.errors = desired.errors
        self.last_sync_ms = (time.monotonic() - started) * 1000

    # -- events ----------------------------------------------------------------------------
    def run_events(self, stop: threading.Event) -> None:
        self.events.run(self.dp, stop)

    # -- conntrack garbage collection --------------------------------------------------------
    def gc_once(self, now_ns: int | None = None) -> int:
        """Expire idle and closed entries. A client->VIP service entry lives exactly as long
        as the connection it steered: once that one is closed or gone, a reused source port
        must not be sent to the old (possibly removed) backend."""
        now = now_ns if now_ns is not None else time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        table = self.dp.table("ct_v1")
        doomed, services, live = [], [], set()
        for key, entry in table.items():
            if key.dir == CT_SERVICE:
                services.append((key, entry))
                continue
            idle = now - entry.last_seen_ns
            closed = entry.flags & CT_F_CLOSED
            limit = UDP_IDLE_NS if key.tuple.proto != 6 else TCP_IDLE_NS
            if (closed and idle > CLOSED_GRACE_NS) or idle > limit:
                doomed.append(key)
                if not closed:
                    # Never closed by a FIN or RST: this is the connection's last word.
                    flow = self.decoder.decode_expired(key, entry, now)
                    self.ring.put(enrich(flow, self.index, self.node))
            elif key.dir == CT_EGRESS and not closed:
                t = key.tuple
                live.add((t.saddr, t.sport, t.daddr, t.dport, t.proto))
        for key, entry in services:
            t = key.tuple
            steered = (t.saddr, t.sport, entry.backend_addr, entry.backend_port, t.proto)
            if steered not in live and now - entry.last_seen_ns > CLOSED_GRACE_NS:
                doomed.append(key)
        for key in doomed:
            try:
                del table[key]
            except KeyError:
                pass
        return len(doomed)

    def run_gc(self, stop: threading.Event, interval: float = 10.0) -> None:
        while not stop.wait(interval):
            try:
                removed = self.gc_once()
                if removed:
                    log.info("conntrack gc removed %d entries", removed)
            except Exception:
                log.exception("conntrack gc failed")

    def map_fill(self) -> dict[str, tuple[int, int]]:
        """Entries and capacity of the maps that can fill up, for the metrics."""
        fill = {}
        for name in (
            "ct_v1",
            "lb_services_v1",
            "lb_backends_v1",
            "ipcache_v1",
            "policy_v1",
            "endpoints_v1",
            "l7_orig_dst_v1",
            "l7_clients_v1",
            "lb_affinity_v1",
        ):
            table = self.dp.table(name)
            fill[name] = (sum(1 for _ in table.keys()), table.max_entries)
        return fill

    def close(self) -> None:
        self.ipr.close()
        self.dp.close()
