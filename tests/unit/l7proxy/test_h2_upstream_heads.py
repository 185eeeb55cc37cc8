"""A malformed response head or trailer block from an h2c backend is refused: the call
fails as the backend's (gRPC UNAVAILABLE, the flow DROPPED with the upstream reset
reason), none of its fields reach the client, and the backend's connection gets
GOAWAY(PROTOCOL_ERROR). Well-formed heads pass as they came."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.events
import pytest

from agent.flows.flow import Flow, Verdict
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from tests.unit.l7proxy.h2lab import H2cBackend, H2cConn
from tests.unit.l7proxy.h2wire import Client, get, run

Block = list[tuple[bytes, bytes]]
ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: grpc, port: 8080}]
"""
GRPC = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]
OK_HEAD: Block = [(b":status", b"200"), (b"content-type", b"application/grpc")]
OK_TRAILERS: Block = [(b"grpc-status", b"0")]
REPLY = b"\x00\x00\x00\x00\x02ok"


@dataclass
class ScriptedBackend(H2cBackend):
    """An h2c backend that answers every request with ``head``, one message and
    ``trailers``, sent as given (its own checks off); records the GOAWAYs it gets."""

    head: Block
    trailers: Block
    goaways: list[int] = field(default_factory=list)

    def h2_config(self) -> h2.config.H2Configuration:
        return h2.config.H2Configuration(client_side=False, header_encoding=None,
                                         validate_outbound_headers=False,
                                         normalize_outbound_headers=False)

    def handle(self, conn: H2cConn, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.StreamEnded):
            conn.h2.send_headers(event.stream_id, self.head)
            conn.h2.send_data(event.stream_id, REPLY)
            conn.h2.send_headers(event.stream_id, self.trailers, end_stream=True)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaways.append(event.error_code)


@asynccontextmanager
async def lab(
    head: Block, trailers: Block
) -> AsyncIterator[tuple[int, ScriptedBackend, list[Flow]]]:
    backend = ScriptedBackend(head, trailers)
    port = await backend.start()
    config = gateway_config(
        ROUTES,
        {"default/grpc:8080": [("127.0.0.1", port)]},
        services=("grpc",),
        protocols={"default/grpc:8080": "h2c"},
    )
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend)
    [listen] = await server.start()
    try:
        yield listen, backend, flows
        server.flows.flush()
    finally:
        await server.close()
        await backend.close()


async def grpc_call(port: int) -> tuple[dict[str, Any], Block]:
    """One unary call: (the response as ``Client.response`` sees it, its trailers)."""
    client = await Client.connect(port)
    client.h2.send_headers(1, [*get(b"/pkg.Svc/Call", b"POST"), *GRPC])
    client.h2.send_data(1, b"\x00\x00\x00\x00\x02hi", end_stream=True)
    client.send()
    answer = await client.response(1)
    trailers = [
        (n, v)
        for e in client.events
        if isinstance(e, h2.events.TrailersReceived)
        for n, v in e.headers or []
    ]
    client.close()
    return answer, trailers


MALFORMED_HEADS = {
    "uppercase name": [*OK_HEAD, (b"X-Bad", b"1")],
    "CR LF in a value": [*OK_HEAD, (b"x-bad", b"a\r\nx-injected: 1")],
    "NUL in a value": [*OK_HEAD, (b"x-bad", b"a\x00b")],
    "edge whitespace": [*OK_HEAD, (b"x-bad", b" a")],
    "space in a name": [*OK_HEAD, (b"x bad", b"1")],
    "empty name": [*OK_HEAD, (b"", b"1")],
    "connection-specific": [*OK_HEAD, (b"connection", b"close")],
    "te": [*OK_HEAD, (b"te", b"gzip")],
    "pseudo after regular": [(b"content-type", b"application/grpc"), (b":status", b"200")],
    "request pseudo": [*OK_HEAD[:1], (b":path", b"/x"), *OK_HEAD[1:]],
    "unknown pseudo": [*OK_HEAD[:1], (b":foo", b"x"), *OK_HEAD[1:]],
    "duplicate status": [*OK_HEAD[:1], *OK_HEAD],
    "no status": [(b"content-type", b"application/grpc")],
    "status not a number": [(b":status", b"2x0"), *OK_HEAD[1:]],
}


@pytest.mark.parametrize("head", MALFORMED_HEADS.values(), ids=MALFORMED_HEADS.keys())
def test_a_malformed_response_head_is_refused_as_the_backends_failure(head: Block) -> None:
    async def body() -> None:
        async with lab(head, OK_TRAILERS) as (port, backend, flows):
            answer, trailers = await grpc_call(port)
            fields = {**answer["headers"], **dict(trailers)}
            assert fields.get(b"grpc-status") == b"14"  # UNAVAILABLE: the backend failed
            assert b"x-bad" not in fields and b"X-Bad" not in fields
            assert b"x-injected" not in fields
            for _ in range(100):
                if backend.goaways:
                    break
                await asyncio.sleep(0.01)
            assert backend.goaways == [h2.errors.ErrorCodes.PROTOCOL_ERROR]
        [flow] = [f for f in flows if f.l7 is not None]
        assert flow.verdict is Verdict.DROPPED
        assert flow.drop_reason_desc == "UPSTREAM_RESET"

    run(body)


MALFORMED_TRAILERS = {
    "pseudo in trailers": [(b":status", b"200"), *OK_TRAILERS],
    "CR LF in a trailer": [(b"grpc-status", b"0"), (b"grpc-message", b"a\r\nb")],
    "uppercase trailer": [(b"Grpc-Status", b"0")],
}


@pytest.mark.parametrize("trailers", MALFORMED_TRAILERS.values(), ids=MALFORMED_TRAILERS.keys())
def test_malformed_trailers_never_reach_the_client(trailers: Block) -> None:
    async def body() -> None:
        async with lab(OK_HEAD, trailers) as (port, backend, _flows):
            answer, got = await grpc_call(port)
            assert answer.get("reset") or (dict(got).get(b"grpc-status") != b"0")
            assert b"a\r\nb" not in dict(got).values()
            assert not [n for n, _ in got if n[:1] == b":" or n != n.lower()]
            for _ in range(100):
                if backend.goaways:
                    break
                await asyncio.sleep(0.01)
            assert backend.goaways == [h2.errors.ErrorCodes.PROTOCOL_ERROR]

    run(body)


def test_a_well_formed_answer_passes_unchanged() -> None:
    async def body() -> None:
        head = [*OK_HEAD, (b"x-meta", b"a b\tc"), (b"set-cookie", b"a=1"), (b"x-empty", b"")]
        async with lab(head, OK_TRAILERS) as (port, backend, flows):
            answer, trailers = await grpc_call(port)
            assert answer.get("ended") and answer["data"] == REPLY
            assert answer["headers"][b"x-meta"] == b"a b\tc"
            assert answer["headers"][b"x-empty"] == b""
            assert dict(trailers) == {b"grpc-status": b"0"}
            assert not backend.goaways
        [flow] = [f for f in flows if f.l7 is not None]
        assert flow.verdict is Verdict.FORWARDED

    run(body)
