"""The waypoint's side of the pool limits (``limits.py``): a request waits here while it is
pending and learns whether it may go. Waiters are served in arrival order; one that gives
up (``wait_timeout``, or its client left) frees its pending place."""

from __future__ import annotations

import asyncio
from collections import deque

from l7proxy.resilience.limits import Admit, PoolLimits

OVERFLOW_BODY = (
    b"upstream connect error or disconnect/reset before headers. reset reason: overflow\n"
)
"""Envoy's body for a ``UO`` answer, which clients and dashboards already recognise."""
OVERFLOW_HEADERS = [(b"content-type", b"text/plain"), (b"x-envoy-overloaded", b"true")]
OVERFLOW_DROP = "UPSTREAM_OVERFLOW"
"""The flow's drop reason for a request refused by the pool limits (Envoy's ``UO``)."""


class Gate:
    """Waiting requests per PoolLimits (keyed by the object: a backend whose policy changed
    gets new limits, and requests still waiting on the old ones finish with them)."""

    def __init__(self) -> None:
        self._waiters: dict[PoolLimits, deque[asyncio.Future[None]]] = {}

    async def enter(self, limits: PoolLimits, wait_timeout: float) -> bool:
        """True: in flight (call ``leave``); False: overflow, answer 503."""
        admitted = limits.admit()
        if admitted is Admit.GO:
            return True
        if admitted is Admit.OVERFLOW:
            return False
        waiters = self._waiters.setdefault(limits, deque())
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            async with asyncio.timeout(wait_timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                limits.finish()  # promoted, then left: pass the place on
                self._wake(limits)
            else:
                limits.abandon()
                if waiter in waiters:
                    waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                limits.overflows += 1
                return False
            raise
        return True

    def leave(self, limits: PoolLimits) -> None:
        limits.finish()
        self._wake(limits)

    def _wake(self, limits: PoolLimits) -> None:
        waiters = self._waiters.get(limits)
        while waiters and limits.can_promote():
            waiter = waiters.popleft()
            if not waiter.done():
                limits.promote()
                waiter.set_result(None)
        if waiters is not None and not waiters:
            del self._waiters[limits]
