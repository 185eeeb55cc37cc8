"""Both HBONE ends in one process, over loopback (tests/unit/hbone/world.py): round trips,
same-node tunnels, pooling, half-close and resets, flow control, rotation and metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.svid.store import write_bundle, write_svid
from identity.certs import to_pem
from l7proxy.hbone.connecthead import connect_fields
from tests.unit.hbone.harness import (
    client_pod,
    mint,
    root,
    serial_of,
    wait_for,
)
from tests.unit.hbone.world import (
    CACHE,
    DB,
    DB_ID,
    WEB,
    WEB_ID,
    A,
    World,
    echo_through,
    expect_refused,
    raw_stream,
    run,
)


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
        assert len(w.a.pool.connections[(WEB_ID, DB_ID, w.b.server.address)]) == 3
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
