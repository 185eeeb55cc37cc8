"""An upstream connection asks Python for its event loop once, at its first request, not
per request: on Python 3.11 ``asyncio.get_running_loop()`` is a ``getpid`` system call,
and the pooled connection's path ran it for every request (bench/results/
traceattr-2026-12-06.md, tracecut-2026-12-06-s16.md)."""

from __future__ import annotations

import asyncio

import pytest

from l7proxy.h1up import Http1Upstream
from tests.unit.l7proxy.h1lab import Wire

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"


def test_a_connection_serves_every_request_on_the_loop_it_asked_for_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    real = asyncio.get_running_loop
    asked: list[asyncio.AbstractEventLoop] = []

    def counting() -> asyncio.AbstractEventLoop:
        asked.append(real())
        return asked[-1]

    async def main() -> None:
        conn = Http1Upstream(("10.1.0.5", 8080))
        conn.connection_made(Wire(strict=False))
        monkeypatch.setattr(asyncio, "get_running_loop", counting)
        for _ in range(3):
            head = conn.begin(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", complete=True)
            conn.data_received(OK)
            assert (await head).status == 200
            assert conn.done is not None
            await conn.done
            assert conn.reusable
            assert head.get_loop() is real()  # futures of the loop the request runs on
        monkeypatch.undo()
        assert asked == [real()] and conn.loop is real()

    asyncio.run(main())
