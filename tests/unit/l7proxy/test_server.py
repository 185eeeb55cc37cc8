"""The waypoint in process over loopback: routing, filters, timeouts, retries, mirrors,
HTTP/1.1 connection handling, Upgrade, h2c, flows and metrics. Backends are the lab's
echo server (Gateway API conformance echo) and small scripted servers."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.flows.flow import Flow, FlowType, Verdict
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import H2Backend, RawBackend, gateway_config, read_response
from lab.echo.responses import EchoContext
from lab.echo.server import EchoServer

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - name: split
    matches: [{path: {type: PathPrefix, value: /split}}]
    backendRefs: [{name: v1, port: 8080, weight: 80}, {name: v2, port: 8080, weight: 20}]
  - name: header-v2
    matches: [{path: {type: PathPrefix, value: /hdr}, headers: [{name: x-version, value: v2}]}]
    backendRefs: [{name: v2, port: 8080}]
  - name: header-default
    matches: [{path: {type: PathPrefix, value: /hdr}}]
    backendRefs: [{name: v1, port: 8080}]
  - name: redirect
    matches: [{path: {type: PathPrefix, value: /old}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
  - name: rewrite
    matches: [{path: {type: PathPrefix, value: /rewrite}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
    backendRefs: [{name: v1, port: 8080}]
  - name: modify
    matches: [{path: {type: PathPrefix, value: /mod}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-added, value: "yes"}], remove: [x-drop]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {add: [{name: x-resp, value: r}]}
    backendRefs: [{name: v1, port: 8080}]
  - name: mirror
    matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}}}]
    backendRefs: [{name: v1, port: 8080}]
  - name: slow
    matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {backendRequest: 200ms}
    backendRefs: [{name: v1, port: 8080}]
  - name: slow-request
    matches: [{path: {type: PathPrefix, value: /deadline}}]
    timeouts: {request: 200ms}
    backendRefs: [{name: v1, port: 8080}]
  - name: cors
    matches: [{path: {type: PathPrefix, value: /cors}}]
    filters:
    - type: CORS
      cors: {allowOrigins: ["https://app.example"], allowMethods: [GET, PUT]}
    backendRefs: [{name: v1, port: 8080}]
  - name: retry
    matches: [{path: {type: PathPrefix, value: /retry}}, {path: {type: PathPrefix, value: /status}}]
    retry: {attempts: 2, codes: [503], backoff: 10ms}
    backendRefs: [{name: v1, port: 8080}]
  - name: raw
    matches: [{path: {type: PathPrefix, value: /raw}}]
    backendRefs: [{name: raw, port: 8080}]
  - name: grpc
    matches: [{path: {type: PathPrefix, value: /grpc.Echo}}]
    backendRefs: [{name: grpc, port: 8080}]
  - name: nowhere
    matches: [{path: {type: PathPrefix, value: /down}}]
    backendRefs: [{name: down, port: 8080}]
"""


@dataclass
class Lab:
    server: WaypointServer
    port: int
    raw: RawBackend
    h2: H2Backend
    logs: dict[str, list[str]]
    flows: list[Flow] = field(default_factory=list)

    async def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            return await asyncio.wait_for(read_response(reader, head=raw[:5] == b"HEAD "), 10)
        finally:
            writer.close()

    async def get(self, path: str, *headers: str) -> tuple[int, dict[str, str], bytes]:
        extra = "".join(f"{h}\r\n" for h in headers)
        return await self.request(
            f"GET {path} HTTP/1.1\r\nHost: example.com\r\n{extra}\r\n".encode()
        )


def echoed(body: bytes) -> dict[str, Any]:
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


async def raw_handler(head: RequestHead, body: bytes) -> bytes:
    if head.target.startswith("/raw/chunked"):
        return (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
    reply = b"got:" + body
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(reply), reply)


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    logs: dict[str, list[str]] = {"v1": [], "v2": []}
    echoes = {
        name: EchoServer(
            EchoContext(namespace="default", pod=f"echo-{name}"), log=logs[name].append
        )
        for name in logs
    }
    ports = {name: (await echo.start([0], "127.0.0.1"))[0] for name, echo in echoes.items()}
    raw = RawBackend(raw_handler, upgrade=True)
    h2 = H2Backend()
    endpoints = {f"default/{n}:8080": [("127.0.0.1", p)] for n, p in ports.items()}
    endpoints["default/raw:8080"] = [("127.0.0.1", await raw.start())]
    endpoints["default/grpc:8080"] = [("127.0.0.1", await h2.start())]
    endpoints["default/down:8080"] = [("127.0.0.1", 1)]  # nothing listens on port 1
    config = gateway_config(
        ROUTES,
        endpoints,
        services=("v1", "v2", "raw", "grpc", "down"),
        protocols={"default/grpc:8080": "h2c"},
    )
    draws = itertools.cycle([i / 10 + 0.05 for i in range(10)])
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend, rng=lambda: next(draws))
    [port] = await server.start()
    try:
        yield Lab(server, port, raw, h2, logs, flows)
    finally:
        await server.close()
        for echo in echoes.values():
            await echo.close()
        await raw.close()
        await h2.close()


def run(test: Callable[[Lab], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 20)

    asyncio.run(main())


# --- routing and filters -----------------------------------------------------------------


def test_routes_by_path_and_header_and_adds_forwarding_headers() -> None:
    async def body(lab: Lab) -> None:
        status, _, data = await lab.get("/hdr/a?q=1", "x-version: v2", "traceparent: 00-abc-def-01")
        assert status == 200
        seen = echoed(data)
        assert seen["pod"] == "echo-v2" and seen["path"] == "/hdr/a?q=1"
        assert seen["headers"]["X-Forwarded-For"] == ["127.0.0.1"]
        assert seen["headers"]["X-Forwarded-Proto"] == ["http"]
        assert seen["headers"]["Traceparent"] == ["00-abc-def-01"]
        status, _, data = await lab.get(
            "/hdr/a", "X-Forwarded-For: 10.0.0.1", "Connection: X-Private", "X-Private: 1"
        )
        assert echoed(data)["pod"] == "echo-v1"
        assert "X-Private" not in echoed(data)["headers"]  # listed in Connection: hop-by-hop
        # Through a Gateway a client's own X-Forwarded-For is replaced (not trusted by default;
        # tests/unit/l7proxy/test_forwarded_for.py has the trusted chain and mesh traffic).
        assert echoed(data)["headers"]["X-Forwarded-For"] == ["127.0.0.1"]

    run(body)


def test_weighted_split_follows_the_weights() -> None:
    async def body(lab: Lab) -> None:
        pods = [echoed((await lab.get("/split"))[2])["pod"] for _ in range(10)]
        assert pods.count("echo-v1") == 8 and pods.count("echo-v2") == 2

    run(body)


def test_redirect_rewrite_and_header_modifiers() -> None:
    async def body(lab: Lab) -> None:
        status, headers, _ = await lab.get("/old/page?x=1")
        assert status == 301 and headers["location"] == "https://example.com/old/page?x=1"
        status, _, data = await lab.get("/rewrite/deep")
        assert status == 200 and echoed(data)["path"] == "/new/deep"
        status, headers, data = await lab.get("/mod", "x-drop: secret")
        seen = echoed(data)["headers"]
        assert seen["X-Added"] == ["yes"] and "X-Drop" not in seen
        assert headers["x-resp"] == "r"

    run(body)


def test_no_route_is_a_dropped_404_flow_and_is_counted() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/nothing/here")
        assert status == 404
        await lab.get("/hdr")
        lab.server.flows.flush()
        dropped = [f for f in lab.flows if f.verdict is Verdict.DROPPED]
        assert dropped and dropped[0].drop_reason_desc == "NO_ROUTE"
        assert dropped[0].l7 is not None and dropped[0].l7.http is not None
        assert dropped[0].l7.http.code == 404 and dropped[0].type is FlowType.L7
        ok = [f for f in lab.flows if f.verdict is Verdict.FORWARDED]
        assert ok and ok[0].tulle is not None and ok[0].tulle.rule == "default/main#header-default"
        assert ok[0].tulle.backend == "default/v1:8080" and ok[0].l7 and ok[0].l7.latency_ns > 0
        metrics = lab.server.metrics
        assert metrics.requests("default/main", "default/v1:8080", 200) == 1
        assert metrics.requests("", "", 404) == 1
        text = b"".join(line.encode() for line in _exposition(lab.server))
        assert b'tulle_waypoint_requests_total{backend="default/v1:8080"' in text

    run(body)


def _exposition(server: WaypointServer) -> list[str]:
    from prometheus_client import generate_latest

    return generate_latest(server.metrics.registry).decode().splitlines(keepends=True)


def test_mirror_copies_the_request_and_ignores_the_answer() -> None:
    async def body(lab: Lab) -> None:
        status, _, data = await lab.get("/mirror/x")
        assert status == 200 and echoed(data)["pod"] == "echo-v1"
        for _ in range(100):
            if any("/mirror/x" in line for line in lab.logs["v2"]):
                break
            await asyncio.sleep(0.01)
        assert any("/mirror/x" in line for line in lab.logs["v2"])

    run(body)


# --- timeouts, retries, failures ---------------------------------------------------------


def test_backend_request_timeout_gives_504() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/slow?delay=600ms")
        assert status == 504

    run(body)


def test_request_timeout_gives_504_and_cors_preflight_is_answered_locally() -> None:
    async def body(lab: Lab) -> None:
        status, _, data = await lab.get("/deadline?delay=600ms")
        assert status == 504 and b"request timeout" in data
        before = len(lab.logs["v1"])
        status, headers, _ = await lab.request(
            b"OPTIONS /cors/x HTTP/1.1\r\nHost: example.com\r\nOrigin: https://app.example\r\n"
            b"Access-Control-Request-Method: PUT\r\n\r\n"
        )
        assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
        assert len(lab.logs["v1"]) == before  # never reached the backend
        status, headers, _ = await lab.get("/cors/y", "Origin: https://app.example")
        assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"

    run(body)


def test_retries_until_success_and_gives_up_on_persistent_503() -> None:
    async def body(lab: Lab) -> None:
        token = uuid.uuid4().hex
        status, _, _ = await lab.get(f"/retry?uuid={token}&succeedAfter=2")
        assert status == 200
        assert sum(token in line for line in lab.logs["v1"]) == 3
        before = len(lab.logs["v1"])
        status, _, _ = await lab.get("/status/503")
        assert status == 503
        assert len(lab.logs["v1"]) - before == 3  # the try and two retries

    run(body)


def test_unreachable_backend_gives_503_dropped() -> None:
    async def body(lab: Lab) -> None:
        status, _, _ = await lab.get("/down")
        assert status == 503
        lab.server.flows.flush()
        assert lab.flows[-1].drop_reason_desc == "UPSTREAM_CONNECT_FAILED"

    run(body)


# --- HTTP/1.1 connection handling --------------------------------------------------------


def test_keep_alive_and_pipelining_answer_in_order() -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        writer.write(
            b"".join(
                f"GET /hdr/{i}?delay=0.{3 - i}s HTTP/1.1\r\nHost: example.com\r\n\r\n".encode()
                for i in range(3)
            )
        )
        paths = [echoed((await read_response(reader))[2])["path"] for _ in range(3)]
        assert paths == ["/hdr/0?delay=0.3s", "/hdr/1?delay=0.2s", "/hdr/2?delay=0.1s"]
        writer.write(b"GET /hdr/again HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await reader.read() == b""
        writer.close()

    run(body)


def test_chunked_bodies_both_ways() -> None:
    async def body(lab: Lab) -> None:
        status, headers, data = await lab.request(
            b"POST /raw/echo HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        assert status == 200 and data == b"got:abcdefg"
        received = lab.raw.received[-1]
        assert received.body == b"abcdefg"
        status, headers, data = await lab.get("/raw/chunked")
        assert headers["transfer-encoding"] == "chunked" and data == b"hello world"

    run(body)


def test_expect_100_continue() -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        writer.write(
            b"PUT /raw/up HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n"
            b"Content-Length: 4\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"data")
        status, _, data = await read_response(reader)
        assert status == 200 and data == b"got:data"
        assert b"expect" not in b"".join(n.lower() for n, _ in lab.raw.received[-1].head.headers)
        writer.close()

    run(body)


def test_websocket_upgrade_is_spliced() -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        writer.write(
            b"GET /raw/ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\nhello"
        )
        status, headers, _ = await read_response(reader)
        assert status == 101 and headers["upgrade"] == "websocket"
        assert await reader.readexactly(5) == b"HELLO"
        writer.write(b"more bytes")
        assert await reader.readexactly(10) == b"MORE BYTES"
        writer.close()

    run(body)


# --- HTTP/2 ------------------------------------------------------------------------------


def test_h2c_prior_knowledge_to_http1_and_grpc_to_h2c() -> None:
    import h2.config
    import h2.connection
    import h2.events

    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        client.initiate_connection()
        base = [(b":scheme", b"http"), (b":authority", b"example.com")]
        client.send_headers(
            1, [(b":method", b"GET"), (b":path", b"/hdr/h2"), *base], end_stream=True
        )
        client.send_headers(
            3,
            [
                (b":method", b"POST"),
                (b":path", b"/grpc.Echo/Say"),
                *base,
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
            ],
        )
        client.send_data(3, b"\x00\x00\x00\x00\x02hi", end_stream=True)
        writer.write(client.data_to_send())
        responses: dict[int, dict[str, Any]] = {1: {"data": b""}, 3: {"data": b""}}
        ended: set[int] = set()
        while len(ended) < 2:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "connection closed"
            for event in client.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    responses[event.stream_id]["headers"] = dict(event.headers or [])
                elif isinstance(event, h2.events.DataReceived):
                    responses[event.stream_id]["data"] += event.data or b""
                    client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    responses[event.stream_id]["trailers"] = dict(event.headers or [])
                elif isinstance(event, h2.events.StreamEnded):
                    ended.add(event.stream_id)
            writer.write(client.data_to_send())
        assert responses[1]["headers"][b":status"] == b"200"
        assert echoed(responses[1]["data"])["path"] == "/hdr/h2"
        assert responses[3]["headers"][b":status"] == b"200"
        assert responses[3]["data"] == b"\x00\x00\x00\x00\x02hi"
        assert responses[3]["trailers"] == {b"grpc-status": b"0"}
        sent = dict(lab.h2.requests[-1])
        assert sent[b":path"] == b"/grpc.Echo/Say" and sent[b"te"] == b"trailers"
        writer.close()

    run(body)


def test_large_bodies_stream_both_ways() -> None:
    async def body(lab: Lab) -> None:
        big = bytes(range(256)) * 12_000  # 3 MB: over the 1 MiB kept for retries
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        writer.write(
            b"POST /raw/big HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % len(big)
        )
        for i in range(0, len(big), 256 * 1024):
            writer.write(big[i : i + 256 * 1024])
            await writer.drain()
        status, headers, data = await read_response(reader)
        assert status == 200 and data == b"got:" + big
        assert lab.raw.received[-1].body == big
        writer.close()

    run(body)


def test_head_request_and_http10_client() -> None:
    async def body(lab: Lab) -> None:
        status, headers, data = await lab.request(
            b"HEAD /hdr HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        )
        assert status == 200 and data == b"" and int(headers["content-length"]) > 0
        status, headers, data = await lab.request(b"GET /raw/chunked HTTP/1.0\r\n\r\n")
        assert status == 200 and data == b"hello world" and "transfer-encoding" not in headers

    run(body)


async def h2_exchange(port: int, streams: list[list[tuple[bytes, bytes]]]) -> list[dict[str, Any]]:
    """Send each header list as a body-less stream over one h2c connection; collect the
    answers (headers, data, trailers) in order."""
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    base = [(b":scheme", b"http"), (b":authority", b"example.com")]
    ids = []
    for headers in streams:
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, [*headers[:2], *base, *headers[2:]], end_stream=True)
        ids.append(sid)
    writer.write(client.data_to_send())
    answers: dict[int, dict[str, Any]] = {sid: {"data": b""} for sid in ids}
    ended: set[int] = set()
    while len(ended) < len(ids):
        data = await asyncio.wait_for(reader.read(65536), 5)
        assert data, "connection closed"
        for event in client.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                answers[event.stream_id]["headers"] = dict(event.headers or [])
            elif isinstance(event, h2.events.DataReceived):
                answers[event.stream_id]["data"] += event.data or b""
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                ended.add(event.stream_id)
        writer.write(client.data_to_send())
    writer.close()
    return [answers[sid] for sid in ids]


def test_h2c_local_answers_and_unreachable_grpc_backend() -> None:
    async def body(lab: Lab) -> None:
        grpc = [(b"content-type", b"application/grpc")]
        missing, down, redirected = await h2_exchange(
            lab.port,
            [
                [(b":method", b"GET"), (b":path", b"/nothing")],
                [(b":method", b"POST"), (b":path", b"/down/x"), *grpc],
                [(b":method", b"GET"), (b":path", b"/old/h2")],
            ],
        )
        assert missing["headers"][b":status"] == b"404"
        # a gRPC client gets a gRPC error: trailers-only, UNAVAILABLE (gatewayapi/grpcstatus.py)
        assert down["headers"][b":status"] == b"200"
        assert down["headers"][b"grpc-status"] == b"14"
        assert redirected["headers"][b":status"] == b"301"
        assert redirected["headers"][b"location"] == b"https://example.com/old/h2"

    run(body)
