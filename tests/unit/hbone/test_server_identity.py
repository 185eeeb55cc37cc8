"""The sending end requires the destination's identity of the peer waypoint, and the receiving
end keeps a connection to the identity it presented (world.py: web and cache on a, db on b).

The attacker here holds a *valid* SVID of the trust domain, only not the destination's: a
node that impersonates another, or anyone on the fabric with a compromised pod's key, that
answers for b's waypoint address."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from agent.svid.store import SVID_DIR, SvidFile, write_svid
from l7proxy.hbone.connecthead import connect_fields
from l7proxy.hbone.identities import SNI_SUFFIX, sni_name
from l7proxy.hbone.tunnel import TunnelConnection
from tests.unit.hbone.harness import echo_pod, mint, spiffe, wait_for
from tests.unit.hbone.world import (
    CACHE,
    DB,
    DB_ID,
    WEB,
    WEB_ID,
    World,
    echo_through,
    expect_refused,
    only,
    raw_stream,
    run,
)

STORE = "127.0.0.24"  # a second pod on b, of another identity
STORE_ID = spiffe("shop", "store")
AAA_ID = spiffe("shop", "aaa")  # sorts first: b's certificate for a client without SNI


def test_sni_names_are_fixed_length_dns_names_one_per_identity() -> None:
    name = sni_name(DB_ID)
    assert re.fullmatch(r"[0-9a-f]{32}" + re.escape(SNI_SUFFIX), name)
    assert name == sni_name(DB_ID) and name != sni_name(WEB_ID)
    # a SPIFFE ID may be long: the name stays one 32-octet label (DNS: at most 63)
    assert len(sni_name(spiffe("n" * 63, "s" * 200)).split(".")[0]) == 32


def replace_svids(directory: Path, *svids: SvidFile) -> None:
    """``directory`` holds exactly ``svids`` from now on."""
    shutil.rmtree(directory / SVID_DIR)
    for svid in svids:
        write_svid(directory, svid)


@pytest.mark.parametrize("uvloop", [False, True], ids=["asyncio", "uvloop"])
@pytest.mark.parametrize("held", [("shop", "intruder"), ("shop", "web")])
def test_a_peer_with_a_valid_svid_of_another_identity_gets_nothing(
    tmp_path: Path, held: tuple[str, str], uvloop: bool
) -> None:
    """b's address answers with a valid SVID that is not db's (an intruder's, or web's own
    stolen from a): the sending end refuses before any stream, and says why."""

    async def body(w: World) -> None:
        delivered: list[object] = []
        w.db_server.close()
        await w.db_server.wait_closed()
        w.db_server = await asyncio.start_server(
            lambda r, wr: delivered.append(wr), *w.db
        )  # the real pod: must never see a connection
        replace_svids(w.dir_b, mint(w.ca, *held))
        w.b.svids.refresh()
        await expect_refused(w, WEB, w.db)
        ev = only(w.a.events, "client")
        assert (ev.verdict, ev.drop_reason) == ("DROPPED", "MTLS_WRONG_IDENTITY")
        assert (ev.source_spiffe_id, ev.destination_spiffe_id) == (WEB_ID, DB_ID)
        assert ev.destination == w.db and ev.peer == w.b.server.address
        assert spiffe(*held) in ev.detail and DB_ID in ev.detail
        assert w.a.metrics.handshakes == {("client", "MTLS_WRONG_IDENTITY"): 1}
        assert not w.a.pool.connections
        # nothing was asked of the peer: no stream, no delivery
        await asyncio.sleep(0.05)
        assert not [e for e in w.b.events if e.verdict == "FORWARDED"]
        assert ("server", "FORWARDED") not in w.b.metrics.decided
        assert not delivered

    run(tmp_path, body, uvloop=uvloop)


def with_store(w: World) -> None:
    """b also runs store (its own identity), and holds aaa, db and store SVIDs."""
    w.cluster.pods[STORE] = (STORE_ID, "b")
    for sa in ("aaa", "store"):
        write_svid(w.dir_b, mint(w.ca, "shop", sa))


def test_each_destination_identity_gets_its_own_connection_and_certificate(
    tmp_path: Path,
) -> None:
    async def body(w: World) -> None:
        with_store(w)
        w.b.svids.refresh()
        store_server, store = await echo_pod(STORE)
        try:
            assert await echo_through(w, WEB, w.db, b"to db") == b"to db"
            assert await echo_through(w, WEB, store, b"to store") == b"to store"
            assert await echo_through(w, WEB, w.db, b"again") == b"again"  # pooled
        finally:
            store_server.close()
        peer = w.b.server.address
        assert set(w.a.pool.connections) == {(WEB_ID, DB_ID, peer), (WEB_ID, STORE_ID, peer)}
        # b presented the identity each connection asked for, never its first one (aaa)
        assert {c.peer_id for conns in w.a.pool.connections.values() for c in conns} == {
            DB_ID,
            STORE_ID,
        }
        assert {c.local_id for c in w.b.server._connections} == {DB_ID, STORE_ID}
        assert w.a.metrics.handshakes == {("client", "ok"): 2}

    run(tmp_path, body)


def test_a_connection_opened_for_one_identity_reaches_no_other_pod(tmp_path: Path) -> None:
    """A stream on a connection opened for db, to store (a pod of b, of another identity):
    refused by b, which presented db's certificate on it."""

    async def body(w: World) -> None:
        with_store(w)
        w.b.svids.refresh()
        store_server, store = await echo_pod(STORE)
        try:
            assert await raw_stream(w, connect_fields(store, (WEB, 4242)), expect=DB_ID) == 403
            ev = only(w.b.events, "server")
            assert (ev.verdict, ev.drop_reason) == ("DROPPED", "MTLS_WRONG_IDENTITY")
            assert (ev.source_spiffe_id, ev.destination_spiffe_id) == (WEB_ID, STORE_ID)
            assert ev.destination == store and ev.source == (WEB, 4242)
            assert f"opened for {DB_ID}" in ev.detail
            # the same connection still serves db
            assert await raw_stream(w, connect_fields(w.db, (WEB, 4243)), expect=DB_ID) == 200
        finally:
            store_server.close()

    run(tmp_path, body)


def test_a_client_without_sni_gets_the_first_identity_and_any_local_pod(
    tmp_path: Path,
) -> None:
    """An HBONE peer that does not ask (Tulle's behaviour before, or another implementation):
    b presents the first identity it holds and delivers to any of its pods (as before)."""

    async def body(w: World) -> None:
        with_store(w)
        w.b.svids.refresh()
        store_server, store = await echo_pod(STORE)
        creds = w.a.svids.current
        assert creds is not None
        ctx = creds.client_context(WEB_ID)
        loop = asyncio.get_running_loop()
        try:
            transport, conn = await loop.create_connection(
                lambda: TunnelConnection(True), *w.b.server.address, ssl=ctx, server_hostname=""
            )
            await asyncio.wait_for(conn.ready, 5)
            presented = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
            assert AAA_ID.encode() in presented
            await wait_for(lambda: w.b.server._connections)
            assert [c.local_id for c in w.b.server._connections] == [""]
            for target in (w.db, store):
                stream = conn.open_stream(connect_fields(target, (WEB, 1)))
                assert await asyncio.wait_for(stream.response, 5) == 200
            conn.close()
        finally:
            store_server.close()

    run(tmp_path, body)


def test_a_destination_without_a_known_identity_is_not_tunnelled(tmp_path: Path) -> None:
    """Placed (a waypoint is known) but no identity: nothing to require of the peer."""

    async def body(w: World) -> None:
        w.cluster.pods[DB] = ("", "b")
        await expect_refused(w, WEB, w.db)
        ev = only(w.a.events, "client")
        assert (ev.drop_reason, ev.detail) == (
            "TUNNEL_UPSTREAM_FAILED",
            f"no identity known for {DB}",
        )
        assert not w.b.events

    run(tmp_path, body)


def test_the_cache_pod_on_a_is_served_by_a_own_waypoint_under_its_identity(
    tmp_path: Path,
) -> None:
    """Same node: web to cache through a's own 15008, which presents cache's SVID."""

    async def body(w: World) -> None:
        assert await echo_through(w, WEB, w.cache, b"local") == b"local"
        [conn] = w.a.pool.connections[(WEB_ID, spiffe("shop", "cache"), w.a.server.address)]
        assert conn.peer_id == spiffe("shop", "cache")
        assert CACHE in {e.destination[0] for e in w.a.events if e.side == "server"}

    run(tmp_path, body)


def test_a_name_the_server_holds_no_svid_for_binds_the_connection_to_its_default(
    tmp_path: Path,
) -> None:
    """An SNI for an identity b does not hold (a guess, or a pod whose SVID has not arrived):
    b presents its first identity (aaa), and the connection reaches only aaa's pods, so
    asking for a name never unlocks the any-pod behaviour of a client without SNI."""

    async def body(w: World) -> None:
        with_store(w)
        w.b.svids.refresh()
        creds = w.a.svids.current
        assert creds is not None
        loop = asyncio.get_running_loop()
        transport, conn = await loop.create_connection(
            lambda: TunnelConnection(True),
            *w.b.server.address,
            ssl=creds.client_context(WEB_ID),
            server_hostname=sni_name(spiffe("shop", "nobody")),
        )
        await asyncio.wait_for(conn.ready, 5)
        assert AAA_ID.encode() in transport.get_extra_info("ssl_object").getpeercert(True)
        stream = conn.open_stream(connect_fields(w.db, (WEB, 7)))
        assert await asyncio.wait_for(stream.response, 5) == 403
        ev = only(w.b.events, "server")
        assert (ev.drop_reason, ev.destination_spiffe_id) == ("MTLS_WRONG_IDENTITY", DB_ID)
        assert f"opened for {AAA_ID}" in ev.detail
        conn.close()

    run(tmp_path, body)
