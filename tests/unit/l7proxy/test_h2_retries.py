"""The HTTPRoute's retries over h2c and gRPC upstreams, in process over loopback: a status
in the rule's codes and a refused connection are retried as over HTTP/1.1, with the body
sent again; a body too large to keep is not; the retry budget holds there too."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.events

from l7proxy.resilience.budget import BudgetParams
from l7proxy.resilience.params import BackendParams
from l7proxy.server import WaypointServer
from l7proxy.testing import H2Backend, gateway_config, read_response

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - name: retry
    matches: [{path: {type: PathPrefix, value: /retry}}]
    retry: {attempts: 2, codes: [503], backoff: 1ms}
    backendRefs: [{name: grpc, port: 8080}]
  - name: flaky
    matches: [{path: {type: PathPrefix, value: /flaky}}]
    retry: {attempts: 3, backoff: 1ms}
    backendRefs: [{name: flaky, port: 8080}]
  - name: once
    matches: [{path: {type: PathPrefix, value: /once}}]
    backendRefs: [{name: grpc, port: 8080}]
"""


@dataclass
class Lab:
    server: WaypointServer
    port: int
    h2: H2Backend

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: example.com\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status, _, data = await asyncio.wait_for(read_response(reader), 10)
            return status, data
        finally:
            writer.close()


@asynccontextmanager
async def lab(params: BackendParams | None = None) -> AsyncIterator[Lab]:
    h2 = H2Backend()
    port = await h2.start()
    endpoints = {
        "default/grpc:8080": [("127.0.0.1", port)],
        # nothing listens on port 1: every other try there is refused
        "default/flaky:8080": [("127.0.0.1", 1), ("127.0.0.1", port)],
    }
    config = gateway_config(
        ROUTES,
        endpoints,
        services=("grpc", "flaky"),
        protocols={"default/grpc:8080": "h2c", "default/flaky:8080": "h2c"},
    )
    if params is not None:
        config.backend_params = {("default", "grpc"): params}
    draws = itertools.cycle([0.1, 0.7, 0.4, 0.9, 0.6, 0.2])
    server = WaypointServer(config, rng=lambda: next(draws))
    clock = [1000.0]

    def tick() -> float:  # each reading 1 ms on: the budget's floor cannot refill
        clock[0] += 0.001
        return clock[0]

    server.proxy.resilience.clock = tick
    [listen] = await server.start()
    try:
        yield Lab(server, listen, h2)
    finally:
        await server.close()
        await h2.close()


def run(
    test: Callable[[Lab], Coroutine[Any, Any, None]], params: BackendParams | None = None
) -> None:
    async def main() -> None:
        async with lab(params) as the_lab:
            await asyncio.wait_for(test(the_lab), 30)

    asyncio.run(main())


def test_a_status_in_the_rules_codes_is_retried_with_the_body_sent_again() -> None:
    async def body(lab: Lab) -> None:
        lab.h2.statuses = [503, 503]
        status, data = await lab.post("/retry/a", b"payload")
        assert (status, data) == (200, b"payload")  # the backend echoes what it got
        assert len(lab.h2.requests) == 3

    run(body)


async def grpc_call(port: int, path: bytes, message: bytes) -> dict[str, Any]:
    """One gRPC call over an h2c connection to the waypoint: headers, data, trailers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    client.initiate_connection()
    client.send_headers(1, [
        (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"),
        (b":path", path), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
    ])
    client.send_data(1, message, end_stream=True)
    writer.write(client.data_to_send())
    answer: dict[str, Any] = {"data": b""}
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "connection closed"
            for event in client.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    answer["headers"] = dict(event.headers or [])
                elif isinstance(event, h2.events.DataReceived):
                    answer["data"] += event.data or b""
                    client.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    answer["trailers"] = dict(event.headers or [])
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    return answer
            writer.write(client.data_to_send())
    finally:
        writer.close()


def test_a_grpc_call_is_retried() -> None:
    async def body(lab: Lab) -> None:
        lab.h2.statuses = [503]
        message = b"\x00\x00\x00\x00\x02hi"
        answer = await grpc_call(lab.port, b"/retry/grpc.Echo/Say", message)
        assert answer["headers"][b":status"] == b"200"
        assert answer["data"] == message
        assert answer["trailers"] == {b"grpc-status": b"0"}
        assert len(lab.h2.requests) == 2
        assert all(dict(r)[b"te"] == b"trailers" for r in lab.h2.requests)

    run(body)


def test_retries_stop_at_the_rules_attempts() -> None:
    async def body(lab: Lab) -> None:
        lab.h2.statuses = [503] * 5
        assert (await lab.post("/retry/a", b"x"))[0] == 503
        assert len(lab.h2.requests) == 3  # the try and 2 retries

    run(body)


def test_a_rule_without_retry_sends_once() -> None:
    async def body(lab: Lab) -> None:
        lab.h2.statuses = [503]
        assert (await lab.post("/once", b"x"))[0] == 503
        assert len(lab.h2.requests) == 1

    run(body)


def test_a_refused_connection_is_retried_on() -> None:
    async def body(lab: Lab) -> None:
        for i in range(8):
            assert await lab.post("/flaky", b"%d" % i) == (200, b"%d" % i)
        assert len(lab.h2.requests) == 8

    run(body)


def test_a_body_too_large_to_keep_is_not_sent_twice() -> None:
    async def body(lab: Lab) -> None:
        lab.h2.statuses = [503]
        big = b"x" * (2 * 1024 * 1024)  # over the 1 MiB kept for retries
        status, _ = await lab.post("/retry/big", big)
        assert status == 503
        assert len(lab.h2.requests) == 1

    run(body)


def test_the_retry_budget_holds_over_h2c() -> None:
    async def body(lab: Lab) -> None:
        lab.h2.statuses = [503] * 100
        for _ in range(10):
            assert (await lab.post("/retry/a", b"x"))[0] == 503
        # 30 tries without a budget; the floor's one retry and the 10th request's 20%
        assert len(lab.h2.requests) == 12

    budget = BudgetParams(percent=20, interval=10.0, min_count=1, min_interval=1.0)
    run(body, BackendParams(budget=budget))
