"""Runs a node's waypoint: the l7proxy server, fed from the cluster state.

The waypoint watches the store like the agent does, compiles route tables with the route
engine, resolves Service backends with the datapath's own service plan (one readiness rule
for L4 and L7), learns each redirected connection's original destination from the pinned
l7_orig_dst_v1 map, and hands every request's flow to the node agent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.datapath.origdst import OriginalDestinations
from agent.datapath.services import plan_services
from agent.flows.l7intake import FlowForwarder
from agent.metrics.server import parse_address
from agent.model.cache import ModelCache
from agent.model.core import EndpointSlice, Service
from agent.model.gateway import Gateway
from agent.store import Store
from agent.store.informer import Cache, list_then_watch
from l7proxy.config import ListenerConfig, StaticEndpoints, WaypointConfig, tls_certificates
from l7proxy.flows import FlowLossCollector
from l7proxy.routing import GatewayParent, RouteCompiler, RouteTables, RoutingInputs
from l7proxy.server import WaypointServer

log = logging.getLogger("tulle.waypoint")
METRICS_PORT = 9966  # agent/metrics: the agent serves 9965, its waypoint 9966
# Loopback of the node's netns: pods route to every other node address (see ARCHITECTURE).
METRICS_ADDRESS = f"127.0.0.1:{METRICS_PORT}"
Address = tuple[str, int]
Certificates = dict[tuple[str, str], tuple[bytes, bytes]]
KINDS = (
    "HTTPRoute",
    "Gateway",
    "GatewayClass",
    "ReferenceGrant",
    "Namespace",
    "Secret",
    "Service",
    "EndpointSlice",
)


def endpoint_map(
    services: Sequence[Service], slices: Sequence[EndpointSlice]
) -> dict[tuple[str, str, int], tuple[Address, ...]]:
    """(namespace, service, service port) -> ready backends, by the datapath's own rules."""
    plan = plan_services(services, slices)
    return {
        (e.namespace, e.name, key.port): tuple((str(b.ip), b.port) for b in e.backends)
        for key, e in plan.entries.items()
    }


def gateway_parents(gateways: Sequence[Gateway]) -> dict[Address, GatewayParent]:
    """(address, listener port) -> the Gateway listener a redirected connection was for."""
    out = {}
    for gw in gateways:
        for address in gw.status.addresses:
            for listener in gw.spec.listeners:
                out[(address.value, listener.port)] = GatewayParent(
                    gw.metadata.namespace, gw.metadata.name, listener.port
                )
    return out


class ClusterFeed:
    """Typed objects from the store cache, recompiled into routing state on change."""

    def __init__(self) -> None:
        self.cache = Cache()
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.compiler = RouteCompiler()
        self.models = ModelCache()

    def handle(self, event: Any) -> None:
        with self.lock:
            self.cache.handle(event)
        self.changed.set()

    def snapshot(
        self,
    ) -> tuple[RouteTables, StaticEndpoints, dict[Address, GatewayParent], Certificates]:
        with self.lock:
            objs = [o for o in self.cache.objects.values() if o.get("kind") in KINDS]
        typed: dict[str, list[Any]] = {}
        for res in self.models.decode_all(objs):
            typed.setdefault(res.kind, []).append(res)
        services = typed.get("Service", [])
        tables = self.compiler.compile(
            RoutingInputs.of(
                typed.get("HTTPRoute", []),
                typed.get("Gateway", []),
                typed.get("GatewayClass", []),
                services,
                typed.get("ReferenceGrant", []),
                typed.get("Namespace", []),
                typed.get("Secret", []),
            )
        )
        endpoints = StaticEndpoints(endpoint_map(services, typed.get("EndpointSlice", [])))
        certificates = tls_certificates(typed.get("Secret", []))
        return tables, endpoints, gateway_parents(typed.get("Gateway", [])), certificates


async def serve(node: str, store: Store, pin_dir: Path, listen: Address, intake: Path,
                metrics: Address = ("127.0.0.1", METRICS_PORT)) -> None:
    feed = ClusterFeed()
    stop = threading.Event()
    threading.Thread(
        target=list_then_watch, args=(store, KINDS, feed.handle, stop), name="watch", daemon=True
    ).start()
    while not feed.cache.synced:
        await asyncio.sleep(0.05)
    tables, endpoints, gateways, certificates = feed.snapshot()
    origins = OriginalDestinations(pin_dir)
    state: dict[str, Mapping[Address, GatewayParent]] = {"gateways": gateways}

    def original_destination(client: Address) -> Address | GatewayParent | None:
        found = origins.lookup(*client)
        if found is None:
            return None
        address = (found.address, found.port)
        return state["gateways"].get(address, address)

    config = WaypointConfig(
        listeners=[ListenerConfig(listen[0], listen[1])],
        tables=tables,
        endpoints=endpoints,
        node_name=node,
        original_destination=original_destination,
        certificates=certificates,
    )
    forwarder = FlowForwarder(intake)
    server = WaypointServer(config, flow_sink=forwarder)
    server.metrics.registry.register(FlowLossCollector(server.flows))
    await server.start(reuse_port=False)
    server.metrics.serve(*metrics)
    log.info("waypoint for %s listening on %s:%d", node, *listen)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    while not done.is_set():
        if feed.changed.is_set():
            feed.changed.clear()
            tables, endpoints, state["gateways"], certificates = feed.snapshot()
            server.update(tables, endpoints, certificates)
        try:
            await asyncio.wait_for(done.wait(), timeout=0.05)
        except TimeoutError:
            pass
    stop.set()
    await server.close()
    forwarder.close()
    origins.close()


def run(node: str, store_file: str, pin_dir: str, listen: str, intake: str,
        metrics_address: str = METRICS_ADDRESS) -> int:
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s waypoint {node} %(levelname)s %(message)s"
    )
    host, _, port = listen.rpartition(":")
    ipaddress.ip_address(host)
    metrics = parse_address(metrics_address, METRICS_PORT)
    with Store(store_file) as store:
        asyncio.run(serve(node, store, Path(pin_dir), (host, int(port)), Path(intake), metrics))
    return 0
