"""Both HBONE ends of one node's waypoint, as ``l7proxy.node`` runs them with ``--svid-dir``:
the 15008 and 15007 listeners on the waypoint's address, the SVID directory polled every
``POLL_SECONDS`` (the agent replaces files whole, so a changed (inode, size, mtime) is a
new file), the directory callbacks swapped on every cluster change, and the collector; and
the bridge (``bridge.TunnelBridge``) that carries the L7 proxy's upstream hops to enrolled
backends over the same pool (``l7proxy.via``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.model.core import Namespace, Pod
from agent.model.node import Node
from agent.model.peerauth import PeerAuthentication
from identity.hbone import HBONE_PORT, TUNNEL_OUTBOUND_PORT
from l7proxy.hbone import ktls
from l7proxy.hbone.bridge import TunnelBridge
from l7proxy.hbone.directory import LiveDirectory, build
from l7proxy.hbone.ends import Address, EventSink, dialer
from l7proxy.hbone.identities import SvidDirectory
from l7proxy.hbone.inbound import HboneServer
from l7proxy.hbone.metrics import HboneMetrics
from l7proxy.hbone.outbound import OutboundServer
from l7proxy.hbone.pool import TunnelPool
from l7proxy.listenfds import HeldListeners

log = logging.getLogger("tulle.waypoint.hbone")
POLL_SECONDS = 1.0


@dataclass
class HboneNode:
    node: str
    trust_domain: str
    svids: SvidDirectory
    directory: LiveDirectory
    server: HboneServer
    outbound: OutboundServer
    metrics: HboneMetrics
    bridge: TunnelBridge
    watcher: asyncio.Task[None] | None = None

    def update(
        self,
        pods: Iterable[Pod],
        nodes: Iterable[Node],
        namespaces: Iterable[Namespace] = (),
        peer_authentications: Iterable[PeerAuthentication] = (),
    ) -> None:
        self.directory.current = build(
            self.node, pods, nodes, self.trust_domain, namespaces, peer_authentications
        )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.svids.refresh():
                creds = self.svids.current
                log.info("SVIDs reloaded: %d held", len(creds.held) if creds else 0)

    async def close(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            with contextlib.suppress(BaseException):
                await self.watcher
        await self.outbound.close()  # the pool's tunnels reset: the bridge's splices end
        await self.bridge.close()
        await self.server.close()


def _expiries(svids: SvidDirectory) -> dict[str, datetime]:
    creds = svids.current
    return {} if creds is None else {k: held.not_after for k, held in creds.held.items()}


async def start(
    node: str,
    host: str,
    svid_dir: Path,
    trust_domain: str,
    *,
    original_destination: Callable[[Address], Address | None],
    admit: Callable[[str, str, int], bool],
    on_event: EventSink,
    mark: int,
    pods: Iterable[Pod] = (),
    nodes: Iterable[Node] = (),
    namespaces: Iterable[Namespace] = (),
    peer_authentications: Iterable[PeerAuthentication] = (),
    ports: tuple[int, int] = (HBONE_PORT, TUNNEL_OUTBOUND_PORT),
    held: HeldListeners | None = None,
) -> HboneNode:
    """``held``: listening sockets a longer-lived process passed (l7proxy.listenfds), taken
    for the ports it holds; the others are bound here."""
    svids = SvidDirectory(svid_dir, trust_domain)
    directory = LiveDirectory(
        build(node, pods, nodes, trust_domain, namespaces, peer_authentications)
    )
    metrics = HboneMetrics(ktls=ktls.probe(), expiries=lambda: _expiries(svids))
    dial = dialer(host, mark)
    server = HboneServer(
        svids,
        identity_of=directory.identity_of,
        is_local=directory.is_local,
        admit=admit,
        on_event=on_event,
        dial=dial,
        metrics=metrics,
    )
    pool = TunnelPool(svids, dial=dial, metrics=metrics)
    outbound = OutboundServer(
        pool,
        original_destination=original_destination,
        identity_of=directory.identity_of,
        waypoint_of=directory.waypoint_of,
        on_event=on_event,
        metrics=metrics,
    )
    def listener(port: int) -> socket.socket | None:
        return held.take(host, port) if held else None

    await server.start(host, ports[0], sock=listener(ports[0]))
    await outbound.start(host, ports[1], sock=listener(ports[1]))
    hbone = HboneNode(
        node, trust_domain, svids, directory, server, outbound, metrics, TunnelBridge(pool)
    )
    hbone.watcher = asyncio.ensure_future(hbone._watch())
    log.info(
        "HBONE on %s:%d (tunnels in) and %s:%d (redirected out), kTLS %s",
        host,
        ports[0],
        host,
        ports[1],
        "available" if metrics.ktls else "not available",
    )
    return hbone
