"""The node-local DNS process: watches Services, EndpointSlices and Pods through the
Kubernetes API (the tulle-lab-dns ServiceAccount) and serves them on the node's link-local
DNS address (NodeLocal-DNS style)."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from lightkube import Client

from agent.kube.source import ClusterSource, KubeconfigError, connect
from lab.dns.server import DnsServer, DnsTable, PodRecord, ServiceRecord
from lab.topology import CLUSTER_DOMAIN, DNS_ADDRESS

log = logging.getLogger("tulle.dns")
WATCHED = ("Service", "EndpointSlice", "Pod")


def build_table(objects: list[dict[str, Any]], serial: int) -> DnsTable:
    """The one translation from stored objects to DNS records."""
    ready_ips: dict[tuple[str, str], list[str]] = {}
    for obj in objects:
        if obj["kind"] != "EndpointSlice":
            continue
        svc = (obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        ips = ready_ips.setdefault((obj["metadata"]["namespace"], svc), [])
        for ep in obj.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready", True):
                ips.extend(ep.get("addresses") or [])
    services, pods = [], []
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Service":
            spec = obj.get("spec") or {}
            cluster_ip = spec.get("clusterIP")
            headless = cluster_ip in (None, "", "None")
            services.append(
                ServiceRecord(
                    name=meta["name"],
                    namespace=meta["namespace"],
                    cluster_ips=() if headless else tuple(spec.get("clusterIPs") or [cluster_ip]),
                    headless_ips=tuple(sorted(ready_ips.get((meta["namespace"], meta["name"]), [])))
                    if headless
                    else (),
                    ports=tuple(
                        (p.get("name", ""), p.get("protocol", "TCP"), int(p["port"]))
                        for p in spec.get("ports") or []
                    ),
                )
            )
        elif obj["kind"] == "Pod":
            ip = (obj.get("status") or {}).get("podIP")
            if ip:
                pods.append(PodRecord(name=meta["name"], namespace=meta["namespace"], ip=ip))
    return DnsTable.build(services, pods, domain=CLUSTER_DOMAIN, serial=serial)


class TableFeed:
    """Keeps the current table. Cluster changes only mark it stale; the next query rebuilds
    it once, so a burst of thousands of writes costs one rebuild, and an idle lab costs none.
    Until every kind is listed it answers from the last full table (empty at start)."""

    def __init__(self, client: Client) -> None:
        self.source = ClusterSource(client, WATCHED, self.handle)
        self.stale = True
        self.table = DnsTable.build([], [], domain=CLUSTER_DOMAIN)
        self.reported: set[str] = set()

    def handle(self, _kind: str, _delta: Any) -> None:
        self.stale = True  # called under source.lock

    def current(self) -> DnsTable:
        with self.source.lock:
            state = self.source.state
            if self.stale and state.synced:
                objects = list(state.objects.values())
                self.table = build_table(objects, serial=state.revision)
                self.stale = False
                for reason in set(self.table.rejected) - self.reported:
                    log.warning("record left out: %s", reason)
                    self.reported.add(reason)
            return self.table


async def _serve(client: Client, address: str) -> None:
    feed = TableFeed(client)
    feed.source.start()
    server = DnsServer(feed.current, address=address, port=53)
    await server.start()
    log.info("serving cluster DNS on %s:53", address)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    feed.source.stop(timeout=1.0)
    await server.close()


def run(kubeconfig: str | None, address: str = str(DNS_ADDRESS)) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dns %(levelname)s %(message)s")
    try:
        client = connect(kubeconfig)
    except KubeconfigError as err:
        raise SystemExit(f"tulle lab dns: {err}") from None
    asyncio.run(_serve(client, address))
    return 0
