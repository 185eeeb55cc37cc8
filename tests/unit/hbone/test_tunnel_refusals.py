"""Every refusal of the HBONE ends, in one process over loopback (world.py): handshake
refusals judged on either side, stream refusals at the receiving end, the sending end's own;
each with the drop reason in the event of the side that decided."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.svid.store import write_svid
from l7proxy.hbone.connecthead import connect_fields
from tests.unit.hbone.harness import (
    client_pod,
    mint,
    root,
    spiffe,
    wait_for,
)
from tests.unit.hbone.world import (
    CACHE,
    CACHE_ID,
    DB,
    WEB,
    WEB_ID,
    World,
    echo_through,
    expect_refused,
    only,
    raw_stream,
    run,
)


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


def test_destination_pod_refuses_the_connection(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        await expect_refused(w, WEB, (DB, 9))  # nothing listens on the pod's port 9
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED" and ev.destination == (DB, 9)
        assert not w.a.events  # the client end saw a 503: the server decided and reports

    run(tmp_path, body)


def test_sending_end_refusals_without_a_tunnel(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        reader, writer = await client_pod(WEB, w.a)  # no original destination recorded
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(-1), 5)
        writer.close()
        ev = w.a.events[-1]
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED" and "original destination" in ev.detail
        assert ev.source[0] == WEB and ev.destination == w.a.outbound.address  # what it reached
        w.cluster.pods["127.0.0.40"] = (spiffe("shop", "db"), "c")  # a node with no waypoint
        await expect_refused(w, WEB, ("127.0.0.40", 80))
        ev = w.a.events[-1]
        assert ev.drop_reason == "TUNNEL_UPSTREAM_FAILED" and "no waypoint" in ev.detail
        assert ev.destination == ("127.0.0.40", 80) and ev.peer == ("", 0)  # none chosen
        assert not w.a.metrics.handshakes

    run(tmp_path, body)


def test_a_silent_peer_is_dropped_after_the_handshake_timeout(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.b.server.handshake_timeout = 0.2
        reader, writer = await asyncio.open_connection(*w.b.server.address)
        await wait_for(lambda: w.b.events)
        ev = only(w.b.events, "server")
        assert ev.drop_reason == "MTLS_HANDSHAKE_FAILED" and ev.peer[0] == "127.0.0.1"
        # no pod was named: the flow goes from the dialling address to this listener
        assert ev.source == ev.peer and ev.destination == w.b.server.address
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the socket is closed
        writer.close()

    run(tmp_path, body)
