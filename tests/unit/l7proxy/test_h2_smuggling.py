"""Property, over real sockets: whatever pseudo-headers an HTTP/2 client sends, the
bytes an HTTP/1.1 backend receives from the waypoint are one request with the client's
method, a target that is its path (or its normalised form) and no CR, LF, NUL, space or
other control byte injected anywhere in the head."""

from __future__ import annotations

import asyncio
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from tests.unit.l7proxy.h2wire import RawClient

CATCH_ALL = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: h1, port: 8080}]}]
"""
SAFE = [b"a", b"/", b"GET", b"1", b".", b":", b"@", b"?", b"%", b"=", b"&", b"HTTP/1.1"]
DANGER = [bytes([c]) for c in b" \t\r\n\x00\x0b\x7f#\xff"]
# mostly safe pieces, so that many requests pass and reach the backend; some danger
fragments = st.lists(st.sampled_from(SAFE * 3 + DANGER), max_size=6).map(b"".join)
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class HeadRecorder:
    """A backend that records each connection's raw request head and answers 200."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from([b"GET", b"POST", b"PURGE"]) | fragments,
    path=fragments.map(lambda b: b"/" + b),
    authority=st.sampled_from([b"example.com", b"svc.ns:8080", b"[::1]:80"]) | fragments,
)
def test_pseudo_headers_never_shape_the_backend_request_line(
    method: bytes, path: bytes, authority: bytes
) -> None:
    async def body() -> None:
        backend = HeadRecorder()
        config = gateway_config(
            CATCH_ALL, {"default/h1:8080": [("127.0.0.1", await backend.start())]}, services=("h1",)
        )
        server = WaypointServer(config)
        [port] = await server.start()
        try:
            client = await RawClient.connect(port)
            block = [(b":method", method), (b":scheme", b"http"), (b":authority", authority)]
            client.write(client.headers(1, [*block, (b":path", path)]))
            answer = await client.until(
                lambda f: type(f).__name__ in ("HeadersFrame", "RstStreamFrame", "GoAwayFrame")
            )
            assert answer is not None
            client.close()
        finally:
            await server.close()
            await backend.close()
        assert len(backend.heads) <= 1
        for head in backend.heads:
            lines = head.split(b"\r\n")[:-2]
            # the target may be normalised (dot segments), never extended
            target = lines[0].removeprefix(method + b" ").removesuffix(b" HTTP/1.1")
            assert lines[0] == method + b" " + target + b" HTTP/1.1" and target[:1] == b"/"
            assert lines[0].count(b" ") == 2 and not any(c < 0x20 or c >= 0x7F for c in lines[0])
            assert lines[1] == b"Host: " + authority.lower()
            for line in lines[1:]:
                name, colon, value = line.partition(b": ")
                assert colon and TOKEN.fullmatch(name), line
                assert not any(c < 0x20 and c != 0x09 or c == 0x7F for c in value), line

    asyncio.run(asyncio.wait_for(body(), 20))
