"""The hardening corpus: raw requests (``corpus/*.http``, escaped text with an
``# expect: STATUS`` line) through the sans-IO parser, and over a real socket through the
waypoint to a recording backend. A refused request is answered and never forwarded."""

from __future__ import annotations

import asyncio
import codecs
from pathlib import Path

import pytest

from l7proxy.config import Limits
from l7proxy.http import END, ParseError, RequestHead, RequestParser
from l7proxy.server import WaypointServer
from l7proxy.testing import RawBackend, gateway_config, read_response

CORPUS = Path(__file__).parent / "corpus"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
"""


def load_case(path: Path) -> tuple[int, bytes]:
    first, _, rest = path.read_text().partition("\n")
    assert first.startswith("# expect: "), path
    raw = codecs.escape_decode(rest.rstrip("\n").encode())[0]
    assert isinstance(raw, bytes)
    return int(first.removeprefix("# expect: ")), raw


CASES = sorted(CORPUS.glob("*.http"))
IDS = [p.stem for p in CASES]


def test_corpus_covers_every_rule() -> None:
    names = set(IDS)
    for needed in (
        "bad-whitespace-before-colon",
        "bad-obs-fold",
        "bad-cl-and-te",
        "bad-duplicate-cl-same",
        "bad-duplicate-cl-different",
        "bad-chunk-size-not-hex",
        "bad-host-missing",
        "bad-host-duplicate",
        "big-header-value",
        "bad-request-line-garbage",
    ):
        assert needed in names


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_parser_verdict(path: Path) -> None:
    status, raw = load_case(path)
    events = RequestParser().feed(raw)
    if status == 200:
        assert isinstance(events[0], RequestHead)
        assert events[-1] is END
        assert not any(isinstance(e, ParseError) for e in events)
    else:
        assert events and isinstance(events[-1], ParseError)
        assert events[-1].status == status
        assert not any(isinstance(e, RequestHead) for e in events)


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_parser_verdict_in_small_pieces(path: Path) -> None:
    status, raw = load_case(path)
    step = 1 if len(raw) < 4096 else 997  # byte by byte, long cases in odd-sized pieces
    parser = RequestParser()
    events = [e for i in range(0, len(raw), step) for e in parser.feed(raw[i : i + step])]
    final = events[-1] if events else None
    if status == 200:
        assert final is END
    else:
        assert isinstance(final, ParseError) and final.status == status


def test_corpus_over_a_socket() -> None:
    """Every case over a real connection: the status line, the connection closed after
    a refusal, and nothing refused ever reaching the backend."""

    async def main() -> None:
        backend = RawBackend(lambda head, body: OK)
        port = await backend.start()
        config = gateway_config(
            ROUTE, {"default/web:8080": [("127.0.0.1", port)]}, services=("web",)
        )
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            for path in CASES:
                status, raw = load_case(path)
                before = len(backend.received)
                reader, writer = await asyncio.open_connection("127.0.0.1", listen)
                writer.write(raw)
                got, headers, _ = await asyncio.wait_for(read_response(reader), 5)
                assert got == status, path.stem
                if status != 200:
                    assert headers.get("connection") == "close", path.stem
                    assert await asyncio.wait_for(reader.read(), 5) == b"", path.stem
                    assert len(backend.received) == before, path.stem
                writer.close()
        finally:
            await server.close()
            await backend.close()

    asyncio.run(main())


def test_slow_header_section_gets_408_and_idle_connection_closes() -> None:
    async def main() -> None:
        limits = Limits(header_timeout=0.3, idle_timeout=0.3)
        config = gateway_config(ROUTE, {}, services=("web",), limits=limits)
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"GET / HTTP/1.1\r\nHost: exa")  # and never the rest
            status, _, _ = await asyncio.wait_for(read_response(reader), 5)
            assert status == 408
            assert await asyncio.wait_for(reader.read(), 5) == b""
            idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", listen)
            assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # closed, no answer
            writer.close()
            idle_writer.close()
        finally:
            await server.close()

    asyncio.run(main())


def test_connections_over_the_limit_get_503() -> None:
    async def main() -> None:
        config = gateway_config(ROUTE, {}, services=("web",), limits=Limits(max_connections=2))
        server = WaypointServer(config)
        [listen] = await server.start()
        try:
            held = [await asyncio.open_connection("127.0.0.1", listen) for _ in range(2)]
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
            assert status == 503 and headers["connection"] == "close"
            assert server.metrics.rejected_connections == 1
            for _, w in held:
                w.close()
            writer.close()
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            status, _, _ = await asyncio.wait_for(read_response(reader), 5)
            assert status == 503  # no endpoints for web, but served: the slot came back
            writer.close()
        finally:
            await server.close()

    asyncio.run(main())
