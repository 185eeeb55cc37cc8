"""An in-process HBONE world for tests: a CA minting real SVIDs, SVID directories, the
directory callbacks of a small cluster, and waypoints (both ends) on loopback addresses."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.flows.tunnelflow import tunnel_flow
from agent.flows.tunnelrecord import TunnelEvent, encode_tunnel_batch, read_tunnel_batch
from agent.svid.store import SvidFile, write_bundle, write_svid
from identity.ca import CertificateAuthority
from identity.certs import to_pem
from identity.spiffe import workload_id
from l7proxy.hbone.ends import Address, dialer
from l7proxy.hbone.identities import SvidDirectory
from l7proxy.hbone.inbound import HboneServer
from l7proxy.hbone.metrics import HboneMetrics
from l7proxy.hbone.outbound import OutboundServer
from l7proxy.hbone.pool import TunnelPool

TD = "cluster.local"


def spiffe(ns: str, sa: str) -> str:
    return str(workload_id(TD, ns, sa))


def root(name: str = "tulle-test-root") -> CertificateAuthority:
    return CertificateAuthority.generate_root(name, datetime.now(UTC) - timedelta(days=1))


def mint(
    ca: CertificateAuthority,
    ns: str,
    sa: str,
    *,
    trust_domain: str = TD,
    start: datetime | None = None,
    lifetime: timedelta = timedelta(hours=1),
) -> SvidFile:
    """A real X.509-SVID for ns/sa, issued by ``ca`` at ``start`` (default: now)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sid = workload_id(trust_domain, ns, sa)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(sid))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    chain = ca.issue(
        csr.public_bytes(serialization.Encoding.PEM), sid, start or datetime.now(UTC), lifetime
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SvidFile(ns, sa, to_pem(chain), key_pem)


def svid_dir(path: Path, roots: list[CertificateAuthority], svids: list[SvidFile]) -> Path:
    write_bundle(path, to_pem([ca.root for ca in roots]))
    for svid in svids:
        write_svid(path, svid)
    return path


def serial_of(svid: SvidFile) -> int:
    return x509.load_pem_x509_certificate(svid.chain_pem).serial_number


@dataclass
class Cluster:
    """Pods by IP (SPIFFE ID, node) and each node's waypoint: the directory callbacks."""

    pods: dict[str, tuple[str, str]] = field(default_factory=dict)
    waypoints: dict[str, Address] = field(default_factory=dict)

    def identity_of(self, ip: str) -> str | None:
        pod = self.pods.get(ip)
        return pod[0] if pod else None

    def is_local_to(self, node: str) -> Callable[[str], bool]:
        return lambda ip: ip in self.pods and self.pods[ip][1] == node

    def waypoint_of(self, ip: str) -> Address | None:
        pod = self.pods.get(ip)
        return self.waypoints.get(pod[1]) if pod else None


@dataclass
class Waypoint:
    name: str
    server: HboneServer
    outbound: OutboundServer
    svids: SvidDirectory
    metrics: HboneMetrics
    events: list[TunnelEvent]
    rejected: list[str]  # why the agent's intake would have refused an event (none, ever)

    @property
    def pool(self) -> TunnelPool:
        return self.outbound.pool

    async def close(self) -> None:
        await self.outbound.close()
        await self.server.close()


async def start_waypoint(
    name: str,
    host: str,
    directory: Path,
    cluster: Cluster,
    *,
    destinations: dict[str, Address] | None = None,
    admit: Callable[[str, str, int], bool] | None = None,
    max_streams: int = 100,
    idle_timeout: float = 60.0,
) -> Waypoint:
    """Both ends of one node's waypoint on ``host`` (ephemeral ports), registered in
    ``cluster.waypoints``. ``destinations``: client IP -> original destination."""
    events: list[TunnelEvent] = []
    rejected: list[str] = []

    def on_event(ev: TunnelEvent) -> None:
        """As the agent takes it: through the intake line's decoder into a flow."""
        try:
            [decoded] = read_tunnel_batch(json.loads(encode_tunnel_batch([ev])))
            if isinstance(decoded, ValueError):
                raise decoded
            tunnel_flow(decoded, name)
        except ValueError as err:
            rejected.append(f"{ev}: {err}")
        events.append(ev)

    metrics = HboneMetrics()
    svids = SvidDirectory(directory, TD)
    server = HboneServer(
        svids,
        identity_of=cluster.identity_of,
        is_local=cluster.is_local_to(name),
        admit=admit or (lambda s, d, p: True),
        on_event=on_event,
        metrics=metrics,
        max_streams=max_streams,
    )
    address = await server.start(host, 0)
    cluster.waypoints[name] = address
    pool = TunnelPool(svids, dial=dialer(host), metrics=metrics, idle_timeout=idle_timeout)
    dests = destinations if destinations is not None else {}
    outbound = OutboundServer(
        pool,
        original_destination=lambda client: dests.get(client[0]),
        identity_of=cluster.identity_of,
        waypoint_of=cluster.waypoint_of,
        on_event=on_event,
    )
    await outbound.start(host, 0)
    return Waypoint(name, server, outbound, svids, metrics, events, rejected)


async def echo_pod(host: str) -> tuple[asyncio.Server, Address]:
    """A pod that echoes every byte and ends its side when the client ends its own."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.write_eof()
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[:2]


async def client_pod(
    source: str, waypoint: Waypoint
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A pod's connection as the kernel redirects it: to the waypoint's outbound listener."""
    return await asyncio.open_connection(*waypoint.outbound.address, local_addr=(source, 0))


async def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
