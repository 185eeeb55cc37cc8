"""Pool: HTTP/1.1 backend connections per (endpoint, hop, TLS), bounded, with idle expiry."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from gatewayapi.backendtls import UpstreamTLS
from l7proxy.h1up import Http1Upstream
from l7proxy.upstream import Address, Connector, UpstreamFailure, show_address
from l7proxy.via import DIRECT, Via


@dataclass
class PoolStats:
    open: int = 0
    idle: int = 0
    created: int = 0
    reused: int = 0
    expired: int = 0
    waits: int = 0
    wait_timeouts: int = 0


class _Slot:
    __slots__ = ("idle", "count", "waiters")

    def __init__(self) -> None:
        self.idle: list[Http1Upstream] = []
        self.count = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class Pool:
    """HTTP/1.1 connections per endpoint: at most ``max_per_endpoint`` open (callers
    beyond that wait in order, up to ``wait_timeout`` seconds), idle ones reused
    newest-first and closed after ``idle_timeout`` seconds."""

    def __init__(
        self,
        connector: Connector,
        *,
        max_per_endpoint: int = 512,
        max_idle_per_endpoint: int = 128,
        idle_timeout: float = 60.0,
        wait_timeout: float = 10.0,
    ) -> None:
        self.connector = connector
        self.max_per_endpoint = max_per_endpoint
        self.max_idle = max_idle_per_endpoint
        self.idle_timeout = idle_timeout
        self.wait_timeout = wait_timeout
        self.stats = PoolStats()
        self._slots: dict[tuple[Address, Via, UpstreamTLS | None], _Slot] = {}

    async def acquire(
        self,
        address: Address,
        via: Via = DIRECT,
        client: Address = ("", 0),
        tls: UpstreamTLS | None = None,
    ) -> Http1Upstream:
        """An idle connection over ``via``, else a new one; at the bound, wait in order for
        one (at most ``wait_timeout`` seconds, then UpstreamFailure: the proxy answers 503).
        ``client`` names the source of a new tunnel (its identity is in ``via``). The key
        holds ``tls`` too, so a plaintext connection never serves a BackendTLSPolicy's
        request, nor one checked against another policy's CA."""
        key = (address, via, tls)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        conn = self._take_idle(slot)
        if conn is not None:
            return conn
        if slot.count >= self.max_per_endpoint:
            conn = await self._wait(slot, address)
            if conn is not None:
                return conn
        slot.count += 1
        self.stats.open += 1
        try:
            conn = await self.connector.connect(
                address, lambda: Http1Upstream(address, via, tls), via, client, tls
            )
        except BaseException:
            self._forget(slot)
            raise
        self.stats.created += 1
        conn.on_close = lambda: self._closed(slot, conn)
        return conn

    def _take_idle(self, slot: _Slot) -> Http1Upstream | None:
        idle = slot.idle
        while idle:
            conn = idle.pop()
            self.stats.idle -= 1
            if not conn.closed:
                self.stats.reused += 1
                return conn
        return None

    async def _wait(self, slot: _Slot, address: Address) -> Http1Upstream | None:
        """Wait until ``slot`` has an idle connection (returned) or room for a new one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while slot.count >= self.max_per_endpoint:
            self.stats.waits += 1
            waiter = loop.create_future()
            slot.waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    self._wake(slot)  # woken but leaving: pass the turn on
                if not isinstance(exc, TimeoutError):
                    raise
                self.stats.wait_timeouts += 1
                raise UpstreamFailure(
                    f"no connection to {show_address(address)} free within {self.wait_timeout:g} s "
                    f"({self.max_per_endpoint} open)",
                    sent=False,
                    drop="UPSTREAM_POOL_EXHAUSTED",
                ) from None
            conn = self._take_idle(slot)
            if conn is not None:
                return conn
        return None

    def release(self, conn: Http1Upstream) -> None:
        """Return ``conn`` after its response ended; it is kept only when reusable."""
        slot = self._slots.get((conn.address, conn.via, conn.tls))
        if slot is None:
            conn.close()
            return
        if conn.reusable and len(slot.idle) < self.max_idle:
            conn.sink = None
            conn.head = None
            conn.on_pause = conn.on_resume = None
            conn.idle_since = (conn.loop or asyncio.get_running_loop()).time()
            slot.idle.append(conn)
            self.stats.idle += 1
            self._wake(slot)
        else:
            conn.close()

    def _closed(self, slot: _Slot, conn: Http1Upstream) -> None:
        if conn in slot.idle:
            slot.idle.remove(conn)
            self.stats.idle -= 1
        self._forget(slot)

    def _forget(self, slot: _Slot) -> None:
        slot.count -= 1
        self.stats.open -= 1
        self._wake(slot)

    @staticmethod
    def _wake(slot: _Slot) -> None:
        while slot.waiters:
            waiter = slot.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def expire(self, now: float) -> None:
        """Close connections idle for longer than ``idle_timeout`` (called periodically)."""
        limit = now - self.idle_timeout
        for slot in self._slots.values():
            stale = [c for c in slot.idle if c.idle_since < limit]
            for conn in stale:
                slot.idle.remove(conn)
                self.stats.idle -= 1
                self.stats.expired += 1
                conn.close()

    def close(self) -> None:
        for slot in self._slots.values():
            for conn in slot.idle:
                conn.close()
            slot.idle.clear()
        self.stats.idle = 0
