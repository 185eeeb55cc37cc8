"""GEP-1731 connection-error retries, in process over loopback: a backend that fails a try
before any byte of its response (RST, FIN with nothing said, a malformed status line, a
refused connect; over h2c a stream reset or a dropped connection) is tried again when the
rule has a retry stanza, also without ``codes``; a failure after the response began is
never retried; a rule without a retry stanza sends once. The upstream conformance case is
``HTTPRouteRetryConnectionError``: attempts 3, two resets then success gives 200; four
failures give 500 or 503."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.errors
import pytest

from agent.flows.flow import Verdict
from l7proxy.server import WaypointServer
from l7proxy.testing import H2Backend, gateway_config, read_response

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /retry}}]
    retry: {attempts: 3, backoff: 1ms}
    backendRefs: [{name: flaky, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /once}}]
    backendRefs: [{name: flaky, port: 8080}]
"""

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Flaky:
    """An HTTP/1.1 backend that fails the first tries as ``script`` says, one per
    request, then answers 200: ``reset`` (RST), ``close`` (FIN, nothing sent),
    ``garbage`` (no status line), ``partial`` (a head and part of the body, then RST)."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                fault = self.script.pop(0) if self.script else "ok"
                if fault in ("reset", "partial"):
                    if fault == "partial":
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
                        await writer.drain()
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if fault == "garbage":
                    writer.write(b"NOT-HTTP garbage\r\n\r\n")
                if fault in ("close", "garbage"):
                    await writer.drain()
                    writer.close()
                    return
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def get(port: int, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """GET, or with ``body`` a POST (``H2Backend`` answers a stream when its body ends)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if body:
            head = f"POST {path} HTTP/1.1\r\nHost: example.com\r\nContent-Length: {len(body)}"
            writer.write(head.encode() + b"\r\n\r\n" + body)
        else:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode())
        status, _, body = await asyncio.wait_for(read_response(reader), 10)
        return status, body
    finally:
        writer.close()


@asynccontextmanager
async def waypoint(
    endpoints: list[tuple[str, int]], *, h2c: bool = False
) -> AsyncIterator[tuple[int, list[Any]]]:
    flows: list[Any] = []
    protocols = {"default/flaky:8080": "h2c"} if h2c else None
    config = gateway_config(
        ROUTES, {"default/flaky:8080": endpoints}, services=("flaky",), protocols=protocols
    )
    server = WaypointServer(config, flow_sink=flows.extend, rng=lambda: 0.5)
    [port] = await server.start()
    try:
        yield port, flows
    finally:
        await server.close()


def run_h1(script: list[str], path: str) -> tuple[int, bytes, int, list[Any]]:
    async def main() -> tuple[int, bytes, int, list[Any]]:
        backend = Flaky(script)
        port = await backend.start()
        try:
            async with waypoint([("127.0.0.1", port)]) as (listen, flows):
                try:
                    status, body = await get(listen, path)
                except (asyncio.IncompleteReadError, ConnectionError):
                    status, body = 0, b""  # the response had begun: the client is cut off
                await asyncio.sleep(0.05)  # the flow is recorded after the answer
                return status, body, backend.requests, flows
        finally:
            await backend.close()

    return asyncio.run(asyncio.wait_for(main(), 30))


@pytest.mark.parametrize("fault", ["reset", "close", "garbage"])
def test_two_failures_before_the_response_then_success_is_retried(fault: str) -> None:
    status, body, tries, _ = run_h1([fault, fault], "/retry")
    assert (status, body, tries) == (200, b"ok", 3)


@pytest.mark.parametrize(("fault", "status"), [("reset", 503), ("close", 503), ("garbage", 502)])
def test_failures_past_the_attempts_answer_an_error(fault: str, status: int) -> None:
    got, _, tries, flows = run_h1([fault] * 4, "/retry")
    assert (got, tries) == (status, 4)  # the try and 3 retries
    drops = [f for f in flows if f.verdict is Verdict.DROPPED]
    reason = "UPSTREAM_PROTOCOL_ERROR" if fault == "garbage" else "UPSTREAM_RESET"
    assert [f.drop_reason_desc for f in drops] == [reason]


def test_the_conformance_failure_status_is_500_or_503() -> None:
    # HTTPRouteRetryConnectionError: succeedAfter 4 with attempts 3 wants 500 or 503
    got, _, _, _ = run_h1(["reset"] * 4, "/retry")
    assert got in (500, 503)


def test_a_failure_after_the_response_began_is_not_retried() -> None:
    status, _, tries, _ = run_h1(["partial"], "/retry")
    assert tries == 1
    assert status in (0, 200)  # the head went on; the client is cut off mid-body


def test_without_a_retry_stanza_a_reset_is_not_retried() -> None:
    status, _, tries, _ = run_h1(["reset"], "/once")
    assert (status, tries) == (503, 1)


def test_a_refused_connect_is_retried_on_another_endpoint() -> None:
    async def main() -> tuple[int, int]:
        backend = Flaky([])
        port = await backend.start()
        try:
            # nothing listens on port 1: a try there is refused before anything is sent
            async with waypoint([("127.0.0.1", 1), ("127.0.0.1", port)]) as (listen, _):
                statuses = [(await get(listen, "/retry"))[0] for _ in range(6)]
                return max(statuses), min(statuses)
        finally:
            await backend.close()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == (200, 200)


# --- h2c -------------------------------------------------------------------------------


class FlakyH2(H2Backend):
    """``H2Backend`` whose first streams fail as ``script`` says: ``rst`` (RST_STREAM
    INTERNAL_ERROR before any head) or ``drop`` (the connection closed)."""

    def __init__(self, script: list[str]) -> None:
        super().__init__()
        self.script = list(script)


def _failing_answer(original: Any) -> Any:
    def answer(self: Any, stream_id: int) -> None:
        backend = self.backend
        if isinstance(backend, FlakyH2) and backend.script:
            fault = backend.script.pop(0)
            if fault == "rst":
                self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            else:
                assert self.transport is not None
                self.transport.abort()
            return
        original(self, stream_id)

    return answer


@pytest.fixture
def flaky_h2(monkeypatch: pytest.MonkeyPatch) -> None:
    from l7proxy import testing

    monkeypatch.setattr(testing._H2Conn, "_answer", _failing_answer(testing._H2Conn._answer))


@pytest.mark.parametrize("fault", ["rst", "drop"])
def test_h2c_failures_before_the_head_are_retried(flaky_h2: None, fault: str) -> None:
    async def main() -> tuple[int, int]:
        backend = FlakyH2([fault, fault])
        port = await backend.start()
        try:
            async with waypoint([("127.0.0.1", port)], h2c=True) as (listen, _):
                status, _ = await get(listen, "/retry", b"payload")
                return status, len(backend.requests)
        finally:
            await backend.close()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == (200, 3)


def test_h2c_failures_past_the_attempts_answer_503(flaky_h2: None) -> None:
    async def main() -> tuple[int, int]:
        backend = FlakyH2(["rst"] * 4)
        port = await backend.start()
        try:
            async with waypoint([("127.0.0.1", port)], h2c=True) as (listen, _):
                status, _ = await get(listen, "/retry", b"payload")
                return status, len(backend.requests)
        finally:
            await backend.close()

    assert asyncio.run(asyncio.wait_for(main(), 30)) == (503, 4)


def test_on_a_reused_connection_each_reset_spends_one_attempt() -> None:
    """A keep-alive connection the backend resets is replayed for free only without a retry
    stanza (a stale connection); under one, each try counts, so ``attempts`` bounds what the
    backend sees (the conformance case: succeedAfter 4 with attempts 3 must fail)."""

    async def main() -> tuple[int, int, int]:
        backend = Flaky(["ok"] + ["reset"] * 4)
        port = await backend.start()
        try:
            async with waypoint([("127.0.0.1", port)]) as (listen, _):
                first, _ = await get(listen, "/retry")  # leaves an idle pooled connection
                status, _ = await get(listen, "/retry")
                return first, status, backend.requests
        finally:
            await backend.close()

    first, status, requests = asyncio.run(asyncio.wait_for(main(), 30))
    assert (first, status) == (200, 503)
    assert requests == 1 + 4  # the warm-up, then the try and three retries
