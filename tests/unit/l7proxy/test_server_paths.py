"""Issue 9, items 4 and 5, through the real waypoint on loopback: path tricks never reach
the ``/public`` backend as ``/admin``, and nothing a client sends can add a line to the
head the waypoint writes upstream. Backends record the raw bytes they receive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import pytest

from agent.flows.flow import Flow, Verdict
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config, read_response

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: paths, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - name: public
    matches: [{path: {type: PathPrefix, value: /public}}]
    backendRefs: [{name: svc-a, port: 8080}]
  - name: admin
    matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: svc-b, port: 8080}]
"""


@dataclass
class Recorder:
    """A backend that records every request head as raw bytes and answers with its name."""

    name: str
    heads: list[bytes] = field(default_factory=list)
    server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                body = self.name.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def paths(self) -> list[str]:
        """The request-target of each head, as the backend would route it."""
        return [backend_path(head.split(b" ", 2)[1].decode("latin-1")) for head in self.heads]


def backend_path(target: str) -> str:
    """What a common backend routes: percent-decoded once, "\\" as "/" (IIS), ";"
    parameters stripped (Tomcat), slashes merged and dot segments removed."""
    path = unquote(target.partition("?")[0]).replace("\\", "/")
    out: list[str] = []
    for segment in path.split("/"):
        segment = segment.partition(";")[0]
        if segment == "..":
            if out:
                out.pop()
        elif segment not in ("", "."):
            out.append(segment)
    return "/" + "/".join(out)


@dataclass
class Lab:
    port: int
    svc_a: Recorder
    svc_b: Recorder
    server: WaypointServer
    flows: list[Flow]

    async def get(self, target: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\n\r\n")
            status, _, body = await asyncio.wait_for(read_response(reader), 10)
            return status, body
        finally:
            writer.close()


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    svc_a, svc_b = Recorder("svc-a"), Recorder("svc-b")
    endpoints = {
        "default/svc-a:8080": [("127.0.0.1", await svc_a.start())],
        "default/svc-b:8080": [("127.0.0.1", await svc_b.start())],
    }
    config = gateway_config(ROUTES, endpoints, services=("svc-a", "svc-b"))
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend)
    [port] = await server.start()
    try:
        yield Lab(port, svc_a, svc_b, server, flows)
    finally:
        await server.close()
        await svc_a.close()
        await svc_b.close()


def run(test: Callable[[Lab], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 20)

    asyncio.run(main())


ATTACKS = [
    b"/public/../admin",
    b"/public/./../admin/x",
    b"/public/%2e%2e/admin",
    b"/public/%2E%2E/admin",
    b"/public/.%2e/admin",
    b"/public%2F..%2Fadmin",
    b"/public/..%2fadmin",
    b"/public/%5C..%5Cadmin",
    b"//admin",
    b"/public//../admin",
    b"/public/..;/admin",
    b"/public/..;x=1/admin",
    b"/public;/../admin",
    b"/public\\..\\admin",
    b"/public/..\\admin",
    b"/public/%252e%252e/admin",
]


@pytest.mark.parametrize("target", ATTACKS, ids=[a.decode() for a in ATTACKS])
def test_path_tricks_never_reach_the_public_backend_as_admin(target: bytes) -> None:
    async def body(lab: Lab) -> None:
        status, answer = await lab.get(target)
        assert status == 400 or answer in (b"svc-a", b"svc-b")
        for path in lab.svc_a.paths():  # whatever svc-a got, it routes it under /public
            assert path == "/public" or path.startswith("/public/"), (target, lab.svc_a.heads)
        if status == 400:
            assert not lab.svc_a.heads and not lab.svc_b.heads
            lab.server.flows.flush()
            [flow] = lab.flows
            assert flow.verdict is Verdict.DROPPED and flow.drop_reason_desc == "INVALID_PATH"

    run(body)


def test_normalized_path_is_what_the_backend_gets() -> None:
    async def body(lab: Lab) -> None:
        assert await lab.get(b"/public/%2e%2e/admin/%7Euser?q=%2F..") == (200, b"svc-b")
        assert await lab.get(b"//public//a/./b/%41?x") == (200, b"svc-a")
        assert [h.split(b" ")[1] for h in lab.svc_b.heads] == [b"/admin/~user?q=%2F.."]
        assert [h.split(b" ")[1] for h in lab.svc_a.heads] == [b"/public/a/b/A?x"]

    run(body)


# --- HTTP/2 pseudo-headers never become a split HTTP/1.1 head ------------------------------


async def h2_request(port: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """One body-less h2c stream; returns the :status (b"" when the stream was reset)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    client.send_headers(1, headers, end_stream=True)
    writer.write(client.data_to_send())
    status = b""
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), 5)
            if not data:
                return status
            for event in client.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers or [])[b":status"]
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    return status
            writer.write(client.data_to_send())
    finally:
        writer.close()


def _h2(method: bytes, path: bytes, authority: bytes = b"example.com") -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", authority),
    ]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # A space in :path would make "GET /public/x HTTP/1.0 HTTP/1.1" upstream.
        # RFC 9113 8.1.1: a malformed head is a stream error (RST_STREAM, no status).
        (_h2(b"GET", b"/public/x HTTP/1.0"), b""),
        (_h2(b"GET", b"/public/x?a= b"), b""),
        # A space in :method: "GET /admin /public/x HTTP/1.1" upstream.
        (_h2(b"GET /admin", b"/public/x"), b""),
        (_h2(b"GET", b"/public/x", b"example.com /admin"), b""),
    ],
    ids=["space in :path", "space in :path query", "space in :method", "space in :authority"],
)
def test_h2_pseudo_headers_cannot_rewrite_the_request_line(
    headers: list[tuple[bytes, bytes]], status: bytes
) -> None:
    async def body(lab: Lab) -> None:
        assert await h2_request(lab.port, headers) == status
        assert not lab.svc_a.heads and not lab.svc_b.heads
        lab.server.flows.flush()
        [flow] = lab.flows
        assert flow.verdict is Verdict.DROPPED
        assert flow.drop_reason_desc in ("INVALID_PATH", "INVALID_REQUEST", "MALFORMED_REQUEST")

    run(body)
