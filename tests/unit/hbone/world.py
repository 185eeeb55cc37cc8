"""The in-process HBONE world the tunnel tests share: two waypoints (a, b) on loopback
addresses, pods web and cache on a and db on b, each node's SVID directory, and helpers
that drive a client pod through the sending end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent.flows.tunnelrecord import TunnelEvent
from tests.unit.hbone.harness import (
    Cluster,
    Waypoint,
    client_pod,
    echo_pod,
    mint,
    root,
    spiffe,
    start_waypoint,
    svid_dir,
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
        # every event, refusals before any pod was named included, is one the agent takes
        assert not self.a.rejected and not self.b.rejected, self.a.rejected + self.b.rejected


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


async def raw_stream(
    w: World, fields: list[tuple[bytes, bytes]], identity: str = WEB_ID, expect: str = DB_ID
) -> int:
    """A CONNECT stream with a head of the test's making (h2's own checks off, as a
    hostile or buggy peer would have them), on a connection to b opened for ``expect``."""
    conn = await w.a.pool._connection((identity, expect, w.b.server.address))
    conn.h2.config.validate_outbound_headers = False
    conn.h2.config.normalize_outbound_headers = False
    stream = conn.open_stream(fields)
    return await asyncio.wait_for(stream.response, 5)
