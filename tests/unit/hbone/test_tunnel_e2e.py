"""Both HBONE ends in one process, over loopback: certificates minted by a real CA, the
directory callbacks of a two-node cluster, events and metrics checked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.flows.tunnelrecord import TunnelEvent
from agent.svid.store import write_bundle, write_svid
from identity.certs import to_pem
from l7proxy.hbone.connecthead import connect_fields
from tests.unit.hbone.harness import (
    Cluster,
    Waypoint,
    client_pod,
    echo_pod,
    mint,
    root,
    serial_of,
    spiffe,
    start_waypoint,
    svid_dir,
    wait_for,
)

A, B = "127.0.0.11", "127.0.0.12"  # the two nodes' waypoints
WEB, DB, CACHE = "127.0.0.21", "127.0.0.22", "127.0.0.23"  # web on A; db on B; cache on A
WEB_ID, DB_ID, CACHE_ID = spiffe("shop", "web"), spiffe("shop", "db"), spiffe("shop", "cache")


class World:
    def __init__(self, tmp: Path, **waypoint_options: Any) -> None:
        self.tmp = tmp
        self.ca = root()
        self.cluster = Cluster(pods={WEB: (WEB_ID, "a"), DB: (DB_ID, "b"), CACHE: (CACHE_ID, "a")})
        self.web_svid = mint(self.ca, "shop", "web")
        self.dir_a = svid_dir(tmp / "a", [self.ca], [self.web_svid, mint(self.ca, "shop", "cache")])
        self.dir_b = svid_dir(tmp / "b", [self.ca], [mint(self.ca, "shop", "db")])
        self.dests: dict[str, tuple[str, int]] = {}
        self.options = waypoint_options

    async def __aenter__(self) -> World:
        self.db_server, self.db = await echo_pod(DB)
        self.cache_server, self.cache = await echo_pod(CACHE)
        self.a = await start_waypoint(
            "a", A, self.dir_a, self.cluster, destinations=self.dests, **self.options
        )
        self.b = await start_waypoint(
            "b", B, self.dir_b, self.cluster, destinations=self.dests, **self.options
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.a.close()
        await self.b.close()
        self.db_server.close()
        self.cache_server.close()


def run(
    tmp: Path, body: Callable[[World], Awaitable[None]], uvloop: bool = False, **options: Any
) -> None:
    async def main() -> None:
        async with World(tmp, **options) as world:
            await body(world)

    if uvloop:  # the waypoint may run on uvloop, which orders callbacks differently
        import uvloop as uv

        with asyncio.Runner(loop_factory=uv.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


async def echo_through(
    world: World, source: str, dest: tuple[str, int], payload: bytes, via: Waypoint | None = None
) -> bytes:
    world.dests[source] = dest
    reader, writer = await client_pod(source, via or world.a)
    writer.write(payload)
    writer.write_eof()
    got = await asyncio.wait_for(reader.read(-1), 5)
    writer.close()
    return got


def test_cross_node_round_trip_and_events(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        payload = bytes(range(256)) * 4096  # 1 MiB: several windows' worth
        assert await echo_through(w, WEB, w.db, payload) == payload
        (client,) = w.a.events
        (server,) = w.b.events
        for ev in (client, server):
            assert ev.verdict == "FORWARDED" and ev.drop_reason == ""
            assert ev.source_spiffe_id == WEB_ID and ev.destination_spiffe_id == DB_ID
            assert ev.destination == w.db and ev.source[0] == WEB
        assert client.side == "client" and client.peer == w.b.server.address
        assert server.side == "server" and server.peer[0] == A
        assert server.source == client.source  # Forwarded carried the client's port
        assert w.a.metrics.handshakes == {("client", "ok"): 1}
        assert w.b.metrics.handshakes == {("server", "ok"): 1}

    run(tmp_path, body)


def test_round_trip_and_refusals_under_uvloop(tmp_path: Path) -> None:
    # uvloop hands HTTP/2 bytes to the protocol before the handshake's awaiter resumes: the
    # peer's identity must be judged before the first stream is, or it reads as unknown.
    async def body(w: World) -> None:
        assert await echo_through(w, WEB, w.db, b"uv" * 50000) == b"uv" * 50000
        assert [ev.verdict for ev in w.b.events] == ["FORWARDED"]
        assert await raw_stream(w, connect_fields(w.db, (CACHE, 1))) == 403
        assert w.b.events[-1].drop_reason == "MTLS_WRONG_IDENTITY"

    run(tmp_path, body, uvloop=True)


def test_same_node_traffic_tunnels_through_its_own_waypoint(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        assert await echo_through(w, WEB, w.cache, b"hello") == b"hello"
        sides = sorted(ev.side for ev in w.a.events)
        assert sides == ["client", "server"] and not w.b.events
        assert w.a.metrics.handshakes == {("client", "ok"): 1, ("server", "ok"): 1}

    run(tmp_path, body)


def test_connections_share_one_handshake(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.dests[WEB] = w.db
        pods = [await client_pod(WEB, w.a) for _ in range(10)]
        for i, (_, writer) in enumerate(pods):
            writer.write(b"n%d" % i)
        for i, (reader, _) in enumerate(pods):
            assert await asyncio.wait_for(reader.readexactly(len(b"n%d" % i)), 5) == b"n%d" % i
        assert w.a.metrics.streams["client"] == 10
        assert w.b.metrics.streams["server"] == 10
        assert w.a.metrics.connections["client"] == 1
        for _, writer in pods:
            writer.close()
        assert w.a.metrics.handshakes == {("client", "ok"): 1}
        assert w.b.metrics.handshakes == {("server", "ok"): 1}
        await wait_for(lambda: w.b.metrics.streams["server"] == 0)

    run(tmp_path, body)


def test_a_full_connection_opens_a_second(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.dests[WEB] = w.db
        pods = [await client_pod(WEB, w.a) for _ in range(5)]
        for reader, writer in pods:
            writer.write(b"x")
            assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        # MAX_CONCURRENT_STREAMS 2: five streams need three connections
        assert w.a.metrics.handshakes == {("client", "ok"): 3}
        assert len(w.a.pool.connections[(WEB_ID, w.b.server.address)]) == 3
        for _, writer in pods:
            writer.close()

    run(tmp_path, body, max_streams=2)


def test_idle_connections_expire_and_dead_ones_leave_the_pool(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        assert await echo_through(w, WEB, w.db, b"a") == b"a"
        await wait_for(lambda: not w.a.pool.connections)  # idle 0.1 s: closed
        assert await echo_through(w, WEB, w.db, b"b") == b"b"
        assert w.a.metrics.handshakes == {("client", "ok"): 2}
        # the peer goes away: the dead connection leaves the pool, the next one redials
        for conn in list(w.b.server._connections):
            conn.abort("test")
        await wait_for(lambda: not w.a.pool.connections)

    run(tmp_path, body, idle_timeout=0.1)


def test_half_close_and_reset_propagate(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.dests[WEB] = w.db
        reader, writer = await client_pod(WEB, w.a)
        writer.write(b"ping")
        writer.write_eof()  # half-close: the echo still answers, then ends its side
        assert await asyncio.wait_for(reader.read(-1), 5) == b"ping"
        writer.close()

        # A pod that resets: the client sees a reset, not a clean end.
        async def rst(_: asyncio.StreamReader, pw: asyncio.StreamWriter) -> None:
            from l7proxy.hbone.splice import reset

            await asyncio.sleep(0.05)
            reset(pw)

        server = await asyncio.start_server(rst, DB, 0)
        w.dests[WEB] = server.sockets[0].getsockname()[:2]
        reader, writer = await client_pod(WEB, w.a)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(-1), 5)
        server.close()

    run(tmp_path, body)


async def expect_refused(w: World, source: str, dest: tuple[str, int]) -> None:
    """The client pod's connection is reset (or ended) without a byte of the destination."""
    w.dests[source] = dest
    reader, writer = await client_pod(source, w.a)
    writer.write(b"hello")
    with pytest.raises(ConnectionResetError):  # a reset at once, not a clean end or a hang
        await asyncio.wait_for(reader.read(-1), 5)
    writer.close()


def only(events: list[TunnelEvent], side: str) -> TunnelEvent:
    found = [ev for ev in events if ev.side == side]
    assert len(found) == 1, found
    return found[0]


def test_client_certificate_from_an_unknown_ca(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        write_svid(w.dir_a, mint(root("rogue"), "shop", "web"))
        w.a.svids.refresh()
        await expect_refused(w, WEB, w.db)
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert (ev.verdict, ev.drop_reason) == ("DROPPED", "MTLS_UNKNOWN_CA")
        assert "unable to get local issuer" in ev.detail
        assert not w.a.events  # the server decided; the client only reset its pod
        assert w.b.metrics.handshakes == {("server", "MTLS_UNKNOWN_CA"): 1}

    run(tmp_path, body)


def test_server_certificate_from_an_unknown_ca(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        write_svid(w.dir_b, mint(root("rogue"), "shop", "db"))
        w.b.svids.refresh()
        await expect_refused(w, WEB, w.db)
        ev = only(w.a.events, "client")
        assert (ev.verdict, ev.drop_reason) == ("DROPPED", "MTLS_UNKNOWN_CA")
        assert ev.source_spiffe_id == WEB_ID and ev.peer == w.b.server.address

    run(tmp_path, body)


def test_expired_certificates_both_ways(tmp_path: Path) -> None:
    old = datetime.now(UTC) - timedelta(hours=2)

    async def body(w: World) -> None:
        write_svid(w.dir_a, mint(w.ca, "shop", "web", start=old, lifetime=timedelta(minutes=5)))
        w.a.svids.refresh()
        await expect_refused(w, WEB, w.db)
        await wait_for(lambda: w.b.events)
        assert only(w.b.events, "server").drop_reason == "MTLS_CERT_EXPIRED"
        write_svid(w.dir_a, w.web_svid)
        write_svid(w.dir_b, mint(w.ca, "shop", "db", start=old, lifetime=timedelta(minutes=5)))
        w.a.svids.refresh()
        w.b.svids.refresh()
        await expect_refused(w, WEB, w.db)
        assert only(w.a.events, "client").drop_reason == "MTLS_CERT_EXPIRED"

    run(tmp_path, body)


def test_certificate_outside_the_trust_domain(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        # signed by the trusted root, so OpenSSL accepts it; the SPIFFE check does not
        write_svid(w.dir_a, mint(w.ca, "shop", "web", trust_domain="elsewhere.example"))
        w.a.svids.refresh()
        await expect_refused(w, WEB, w.db)
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "MTLS_WRONG_IDENTITY"
        assert "elsewhere.example" in ev.detail

    run(tmp_path, body)


def test_a_client_without_alpn_h2_is_refused(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        creds = w.a.svids.current
        assert creds is not None
        creds.held[WEB_ID].client.set_alpn_protocols(["http/1.1"])
        await expect_refused(w, WEB, w.db)
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "MTLS_HANDSHAKE_FAILED" and "ALPN" in ev.detail

    run(tmp_path, body)


async def raw_stream(w: World, fields: list[tuple[bytes, bytes]], identity: str = WEB_ID) -> int:
    """A CONNECT stream with a head of the test's making (h2's own checks off, as a
    hostile or buggy peer would have them)."""
    conn = await w.a.pool._connection((identity, w.b.server.address))
    conn.h2.config.validate_outbound_headers = False
    conn.h2.config.normalize_outbound_headers = False
    stream = conn.open_stream(fields)
    return await asyncio.wait_for(stream.response, 5)


def test_forwarded_names_another_identity_than_the_certificate(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        # node a's certificate is web's; the head claims the stream comes from cache
        status = await raw_stream(w, connect_fields(w.db, (CACHE, 4242)))
        assert status == 403
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "MTLS_WRONG_IDENTITY"
        assert ev.source == (CACHE, 4242) and ev.source_spiffe_id == WEB_ID
        assert CACHE_ID in ev.detail

    run(tmp_path, body)


def test_destination_not_on_the_receiving_node(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        assert await raw_stream(w, connect_fields(w.cache, (WEB, 1))) == 404
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "TUNNEL_DESTINATION_NOT_LOCAL"
        assert ev.destination == w.cache

    run(tmp_path, body)


def test_policy_denies_the_source(tmp_path: Path) -> None:
    seen: list[tuple[str, str, int]] = []

    def admit(src: str, dst: str, port: int) -> bool:
        seen.append((src, dst, port))
        return False

    async def body(w: World) -> None:
        await expect_refused(w, WEB, w.db)
        await wait_for(lambda: w.b.events)
        assert only(w.b.events, "server").drop_reason == "POLICY_DENIED"
        assert seen == [(WEB, DB, w.db[1])]

    run(tmp_path, body, admit=admit)


BAD_HEADS = [
    [(b":method", b"GET"), (b":authority", b"127.0.0.22:1"), (b"forwarded", b"for=127.0.0.21")],
    [
        (b":method", b"CONNECT"),
        (b":authority", b"127.0.0.22:1"),
        (b":path", b"/"),
        (b"forwarded", b"for=127.0.0.21"),
    ],
    [(b":method", b"CONNECT"), (b":authority", b"db.shop:80"), (b"forwarded", b"for=127.0.0.21")],
    [(b":method", b"CONNECT"), (b":authority", b"127.0.0.22:1")],
    [(b":method", b"CONNECT"), (b":authority", b"127.0.0.22:0"), (b"forwarded", b"for=x")],
    [(b":method", b"CONNECT"), (b"forwarded", b"for=127.0.0.21")],
    [(b":method", b"CONNECT"), (b":authority", b"127.0.0.22:1"), (b"Forwarded", b"for=1.2.3.4")],
]


def test_malformed_heads_refuse_the_stream_not_the_connection(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        for fields in BAD_HEADS:
            assert await raw_stream(w, fields) in (400, 405)
        events = [ev for ev in w.b.events if ev.side == "server"]
        assert len(events) == len(BAD_HEADS)
        assert {ev.drop_reason for ev in events} == {"MTLS_HANDSHAKE_FAILED"}
        assert all(ev.detail.startswith("malformed CONNECT") for ev in events)
        # the same connection still carries a good stream
        assert await echo_through(w, WEB, w.db, b"still fine") == b"still fine"
        assert w.a.metrics.handshakes == {("client", "ok"): 1}

    run(tmp_path, body)


def test_no_certificate_for_the_client_identity(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.cluster.pods["127.0.0.24"] = (spiffe("shop", "batch"), "a")
        await expect_refused(w, "127.0.0.24", w.db)
        ev = only(w.a.events, "client")
        assert ev.drop_reason == "TUNNEL_NO_CERTIFICATE"
        assert not w.b.events and not w.a.metrics.handshakes

    run(tmp_path, body)


def test_unreachable_peer_waypoint(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.cluster.waypoints["b"] = ("127.0.0.99", 9)  # nothing listens there
        await expect_refused(w, WEB, w.db)
        ev = only(w.a.events, "client")
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED"
        assert "unreachable" in ev.detail

    run(tmp_path, body)


def test_rotation_keeps_open_streams_and_new_connections_use_the_new_cert(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> None:
        w.dests[WEB] = w.db
        reader, writer = await client_pod(WEB, w.a)
        writer.write(b"before")
        assert await asyncio.wait_for(reader.readexactly(6), 5) == b"before"
        (old_conn,) = w.b.server._connections
        assert old_conn.peer_serial == serial_of(w.web_svid)

        renewed = mint(w.ca, "shop", "web")
        write_svid(w.dir_a, renewed)
        assert w.a.svids.refresh()
        writer.write(b"after")  # the open stream goes on over the old connection
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"after"

        assert await echo_through(w, WEB, w.db, b"new") == b"new"
        serials = {conn.peer_serial for conn in w.b.server._connections}
        assert serial_of(renewed) in serials
        assert w.a.metrics.handshakes == {("client", "ok"): 2}
        writer.write(b"still")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"still"
        writer.close()

    run(tmp_path, body)


def test_metrics_exposition(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    async def body(w: World) -> None:
        assert await echo_through(w, WEB, w.db, b"m") == b"m"
        registry = CollectorRegistry()
        registry.register(w.b.metrics)
        text = generate_latest(registry).decode()
        assert 'tulle_waypoint_hbone_handshakes_total{result="ok",side="server"} 1.0' in text
        assert 'tulle_waypoint_hbone_streams_total{side="server",verdict="FORWARDED"} 1.0' in text
        assert "tulle_waypoint_ktls 0.0" in text

    run(tmp_path, body)


def test_destination_pod_refuses_the_connection(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        await expect_refused(w, WEB, (DB, 9))  # nothing listens on the pod's port 9
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED" and ev.destination == (DB, 9)
        assert not w.a.events  # the client end saw a 503: the server decided and reports

    run(tmp_path, body)


def test_a_client_reset_reaches_the_pod_as_a_reset(tmp_path: Path) -> None:
    seen: asyncio.Queue[BaseException | bytes] = asyncio.Queue()

    async def pod(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(2)
            writer.write(first)
            await seen.put(await reader.read(-1))
        except ConnectionError as exc:
            await seen.put(exc)

    async def body(w: World) -> None:
        from l7proxy.hbone.splice import reset

        server = await asyncio.start_server(pod, DB, 0)
        w.dests[WEB] = server.sockets[0].getsockname()[:2]
        reader, writer = await client_pod(WEB, w.a)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.readexactly(2), 5) == b"hi"
        reset(writer)
        outcome = await asyncio.wait_for(seen.get(), 5)
        assert isinstance(outcome, ConnectionResetError), outcome
        server.close()

    run(tmp_path, body)


def test_a_pod_that_does_not_read_holds_the_client_back(tmp_path: Path) -> None:
    """Flow control end to end: what the waypoints buffer for a stalled pod is bounded (a
    stream window and socket buffers), so the client's writes stop being accepted."""
    release = asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    async def body(w: World) -> None:
        server = await asyncio.start_server(stalled, DB, 0, limit=1024)
        w.dests[WEB] = server.sockets[0].getsockname()[:2]
        reader, writer = await client_pod(WEB, w.a)
        chunk, sent = b"z" * (1 << 20), 0
        while sent < 256 << 20:
            writer.write(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                break
            sent += len(chunk)
        assert sent < 64 << 20, f"{sent >> 20} MiB accepted for a pod that reads nothing"
        writer.transport.abort()
        release.set()
        server.close()

    run(tmp_path, body)


def test_sending_end_refusals_without_a_tunnel(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        reader, writer = await client_pod(WEB, w.a)  # no original destination recorded
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(-1), 5)
        writer.close()
        ev = w.a.events[-1]
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED" and "original destination" in ev.detail
        w.cluster.pods["127.0.0.40"] = (spiffe("shop", "db"), "c")  # a node with no waypoint
        await expect_refused(w, WEB, ("127.0.0.40", 80))
        ev = w.a.events[-1]
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED" and "no waypoint" in ev.detail
        assert not w.a.metrics.handshakes

    run(tmp_path, body)


def test_a_silent_peer_is_dropped_after_the_handshake_timeout(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.b.server.handshake_timeout = 0.2
        reader, writer = await asyncio.open_connection(*w.b.server.address)
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "MTLS_HANDSHAKE_FAILED" and ev.peer[0] == "127.0.0.1"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the socket is closed
        writer.close()

    run(tmp_path, body)


def test_root_rotation_overlap_keeps_tunnels_working(tmp_path: Path) -> None:
    """Both roots trusted during the overlap: a node renewed under the new root and one
    still on the old root tunnel both ways, open streams survive the bundle change, and
    once the old root leaves the bundle an old-root SVID is refused."""

    async def body(w: World) -> None:
        w.dests[WEB] = w.db
        reader, writer = await client_pod(WEB, w.a)
        writer.write(b"open")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"open"

        new = root("tulle-test-root-2")
        both = to_pem([w.ca.root, new.root])
        for directory, svids in ((w.dir_a, w.a.svids), (w.dir_b, w.b.svids)):
            write_bundle(directory, both)
            svids.refresh()
        write_svid(w.dir_a, mint(new, "shop", "web"))  # a renewed under the new root
        w.a.svids.refresh()
        assert await echo_through(w, WEB, w.db, b"overlap") == b"overlap"  # b: old root
        writer.write(b"still")
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"still"
        writer.close()

        write_bundle(w.dir_a, to_pem([new.root]))  # the overlap ends on a; b never renewed
        w.a.svids.refresh()
        # the pooled connection was verified under the old bundle: new streams dial anew
        await expect_refused(w, WEB, w.db)
        assert w.a.events[-1].drop_reason == "MTLS_UNKNOWN_CA"

    run(tmp_path, body)
