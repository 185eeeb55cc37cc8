"""The L7 proxy's upstream hop over HBONE, in process on loopback: node a's waypoint routes an
HTTP request (Gateway API) to db on node b, and the hop rides a tunnel presenting the
*client pod's* SVID to b's receiving end, which checks it and delivers from its own address.
A client outside the mesh gets 503 AUTH_REQUIRED and nothing reaches the backend."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.flows.flow import Flow
from l7proxy.hbone.bridge import TunnelBridge
from l7proxy.hbone.directory import PodDirectory
from l7proxy.hbone.ends import dialer
from l7proxy.server import WaypointServer
from l7proxy.testing import H2Backend, gateway_config, read_response
from tests.unit.hbone.harness import Cluster, mint, root, spiffe, start_waypoint, svid_dir

A, B = "127.0.0.31", "127.0.0.32"  # the nodes' waypoints
WEB, API, DB, PLAIN = "127.0.0.41", "127.0.0.42", "127.0.0.43", "127.0.0.44"
WEB_ID, API_ID, DB_ID = spiffe("shop", "web"), spiffe("shop", "api"), spiffe("shop", "db")
ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: db, port: 8080}]}]
"""


async def http_pod(host: str, seen: list[tuple[str, int]]) -> tuple[asyncio.Server, int]:
    """An HTTP/1.1 backend answering each request with the address it came from."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while await reader.readuntil(b"\r\n\r\n"):
                seen.append(peer)
                body = f"{peer[0]}".encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1]


async def get(port: int, source: str, extra: str = "", body: str = "") -> tuple[int, bytes]:
    """GET /x (POST with ``body``) from ``source``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    method = "POST" if body else "GET"
    if body:
        extra += f"Content-Length: {len(body)}\r\n"
    try:
        writer.write(f"{method} /x HTTP/1.1\r\nHost: shop.example\r\n{extra}\r\n{body}".encode())
        status, _, body = await asyncio.wait_for(read_response(reader), 10)
        return status, body
    finally:
        writer.close()


def test_the_upstream_hop_rides_a_tunnel_as_the_client_and_plaintext_is_refused(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        ca = root()
        cluster = Cluster(pods={WEB: (WEB_ID, "a"), API: (API_ID, "a"), DB: (DB_ID, "b"),
                                PLAIN: (spiffe("plain", "default"), "a")})
        dir_a = svid_dir(tmp_path / "a", [ca], [mint(ca, "shop", "web"), mint(ca, "shop", "api")])
        dir_b = svid_dir(tmp_path / "b", [ca], [mint(ca, "shop", "db")])
        seen: list[tuple[str, int]] = []
        backend, db_port = await http_pod(DB, seen)
        a = await start_waypoint("a", A, dir_a, cluster)
        b = await start_waypoint("b", B, dir_b, cluster)
        b.server.dial = dialer(B)  # b delivers from its own address, as in a node
        mesh = PodDirectory("a", cluster.pods, cluster.waypoints,
                            {WEB: ("STRICT", {}), API: ("STRICT", {}), DB: ("STRICT", {})})
        flows: list[Flow] = []
        config = gateway_config(ROUTE, {"default/db:8080": [(DB, db_port)]}, services=("db",))
        l7 = WaypointServer(config, flow_sink=flows.extend)
        l7.proxy.connector.mesh = mesh
        bridge = l7.proxy.connector.tunnels = TunnelBridge(a.pool)
        [port] = await l7.start()
        try:
            # An enrolled client: through b's receiving end, which delivered it (the
            # backend's peer is b's address, not a's: no plaintext hop from a).
            assert await get(port, WEB) == (200, B.encode())
            assert await get(port, WEB) == (200, B.encode())  # pooled: one tunnel, one stream
            assert len(a.pool.connections) == 1 and len(seen) == 2
            assert a.metrics.streams["client"] == 1  # the pooled HTTP/1.1 connection's
            assert a.metrics.decided[("client", "FORWARDED")] == 1
            [delivered] = [e for e in b.events if e.verdict == "FORWARDED"]
            assert (delivered.side, delivered.source_spiffe_id) == ("server", WEB_ID)
            assert delivered.destination == (DB, db_port) and delivered.source[0] == WEB
            # Another identity gets its own tunnel connection, never web's.
            assert await get(port, API) == (200, B.encode())
            assert {key[0] for key in a.pool.connections} == {WEB_ID, API_ID}
            assert [e.source_spiffe_id for e in b.events if e.verdict == "FORWARDED"] == [
                WEB_ID, API_ID
            ]
            # A client outside the mesh: 503, AUTH_REQUIRED, and the backend saw nothing.
            status, body = await get(port, PLAIN)
            assert status == 503 and b"accepts only mutual TLS" in body
            # Headers claiming to be web change nothing: the socket's peer is the client.
            forged = f"Forwarded: for={WEB}\r\nX-Forwarded-For: {WEB}\r\n"
            assert (await get(port, PLAIN, forged))[0] == 503
            assert len(seen) == 3 and len(b.events) == 2
            l7.flows.flush()  # the recorder's batch, now
            by_client = {f.ip.source: f for f in flows if f.ip is not None}
            tunnelled = by_client[WEB]
            assert tunnelled.ip is not None and tunnelled.ip.encrypted
            assert tunnelled.source is not None and tunnelled.source.spiffe_id == WEB_ID
            assert tunnelled.destination is not None and tunnelled.destination.spiffe_id == DB_ID
            refused = by_client[PLAIN]
            assert refused.drop_reason_desc == "AUTH_REQUIRED" and refused.l7 is not None
            assert refused.l7.http is not None and refused.l7.http.code == 503
            assert refused.ip is not None and not refused.ip.encrypted
        finally:
            await l7.close()
            await a.close()  # its tunnels reset: the bridge's splices end on their own
            await bridge.close()
            await b.close()
            backend.close()

    asyncio.run(main())


def test_a_peer_refusal_is_a_503_naming_it(tmp_path: Path) -> None:
    """b refuses the stream (NetworkPolicy on its side): a's request fails as a connect
    failure (503, not a plaintext retry), its flow names the peer's refusal."""

    async def main() -> None:
        ca = root()
        cluster = Cluster(pods={WEB: (WEB_ID, "a"), DB: (DB_ID, "b")})
        dir_a = svid_dir(tmp_path / "a", [ca], [mint(ca, "shop", "web")])
        dir_b = svid_dir(tmp_path / "b", [ca], [mint(ca, "shop", "db")])
        seen: list[tuple[str, int]] = []
        backend, db_port = await http_pod(DB, seen)
        a = await start_waypoint("a", A, dir_a, cluster)
        b = await start_waypoint("b", B, dir_b, cluster, admit=lambda s, d, p: False)
        flows: list[Flow] = []
        config = gateway_config(ROUTE, {"default/db:8080": [(DB, db_port)]}, services=("db",))
        l7 = WaypointServer(config, flow_sink=flows.extend)
        l7.proxy.connector.mesh = PodDirectory(
            "a", cluster.pods, cluster.waypoints, {WEB: ("STRICT", {}), DB: ("STRICT", {})}
        )
        l7.proxy.connector.tunnels = TunnelBridge(a.pool)
        [port] = await l7.start()
        try:
            status, _ = await get(port, WEB)
            assert status == 503 and seen == []
            assert [e.drop_reason for e in b.events] == ["POLICY_DENIED"]
            l7.flows.flush()
            [flow] = [f for f in flows if f.ip is not None and f.ip.source == WEB]
            assert flow.drop_reason_desc == "POLICY_DENIED"
            assert flow.ip is not None and not flow.ip.encrypted  # nothing went through
        finally:
            await l7.close()
            await a.close()
            await b.close()
            backend.close()

    asyncio.run(main())


def test_an_h2c_backend_is_reached_over_the_tunnel_too(tmp_path: Path) -> None:
    """The h2c upstream client (gRPC, backends marked h2c) takes the same hop."""

    async def main() -> None:
        ca = root()
        backend = H2Backend()
        grpc_pod = "127.0.0.1"  # H2Backend listens there: a pod of node b here
        cluster = Cluster(pods={WEB: (WEB_ID, "a"), grpc_pod: (DB_ID, "b")})
        dir_a = svid_dir(tmp_path / "a", [ca], [mint(ca, "shop", "web")])
        dir_b = svid_dir(tmp_path / "b", [ca], [mint(ca, "shop", "db")])
        h2_port = await backend.start()
        a = await start_waypoint("a", A, dir_a, cluster)
        b = await start_waypoint("b", B, dir_b, cluster)
        config = gateway_config(ROUTE, {"default/db:8080": [(grpc_pod, h2_port)]},
                                services=("db",), protocols={"default/db:8080": "h2c"})
        flows: list[Flow] = []
        l7 = WaypointServer(config, flow_sink=flows.extend)
        l7.proxy.connector.mesh = PodDirectory(
            "a", cluster.pods, cluster.waypoints, {WEB: ("STRICT", {}), grpc_pod: ("STRICT", {})}
        )
        bridge = l7.proxy.connector.tunnels = TunnelBridge(a.pool)
        [port] = await l7.start()
        try:
            # (a body: the test backend answers a stream once it ended after its head)
            assert await get(port, WEB, body="one") == (200, b"one")
            assert await get(port, WEB, body="two") == (200, b"two")
            assert len(backend.requests) == 2
            # one h2c connection, one stream of one tunnel, delivered by b as web
            [delivered] = [e for e in b.events if e.verdict == "FORWARDED"]
            assert delivered.source_spiffe_id == WEB_ID
            assert delivered.destination == (grpc_pod, h2_port)
            l7.flows.flush()
            assert all(f.ip is not None and f.ip.encrypted for f in flows) and len(flows) == 2
        finally:
            await l7.close()
            await a.close()
            await bridge.close()
            await b.close()
            await backend.close()

    asyncio.run(main())
