"""HTTPFault through the waypoint in process over loopback: an abort at 50% over 200
requests fires within a binomial bound, never reaches the backend and leaves a FAULT_ABORT
flow; a delay holds the request at least its time; a missing fault answers 500."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from agent.flows.flow import Flow, Verdict
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import RawBackend, gateway_config, read_response
from tests.unit.l7proxy.test_h2_retries import grpc_call

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /abort}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.tulle.io, kind: HTTPFault, name: half}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /delay}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.tulle.io, kind: HTTPFault, name: slow}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /grpc.Echo}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.tulle.io, kind: HTTPFault, name: down}}]
    backendRefs: [{name: web, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    filters: [{type: ExtensionRef, extensionRef: {group: policy.tulle.io, kind: HTTPFault, name: gone}}]
    backendRefs: [{name: web, port: 8080}]
---
apiVersion: policy.tulle.io/v1alpha1
kind: HTTPFault
metadata: {name: half, namespace: default}
spec:
  abort: {httpStatus: 503, percentage: {value: 50}}
---
apiVersion: policy.tulle.io/v1alpha1
kind: HTTPFault
metadata: {name: slow, namespace: default}
spec:
  delay: {fixedDelay: 200ms}
---
apiVersion: policy.tulle.io/v1alpha1
kind: HTTPFault
metadata: {name: down, namespace: default}
spec:
  abort: {grpcStatus: UNAVAILABLE}
"""


@dataclass
class Lab:
    server: WaypointServer
    port: int
    backend: RawBackend
    flows: list[Flow]

    async def get(self, path: str) -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: example.com\r\n\r\n".encode())
            status, _, body = await asyncio.wait_for(read_response(reader), 10)
            return status, body
        finally:
            writer.close()


async def ok(head: RequestHead, body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    backend = RawBackend(ok)
    port = await backend.start()
    config = gateway_config(
        ROUTES, {"default/web:8080": [("127.0.0.1", port)]}, services=("web",)
    )
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend, rng=random.Random(1414).random)
    [listen] = await server.start()
    try:
        yield Lab(server, listen, backend, flows)
    finally:
        await server.close()
        await backend.close()


def run(test: Callable[[Lab], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 60)

    asyncio.run(main())


def test_an_abort_fires_at_its_percentage_and_never_reaches_the_backend() -> None:
    async def body(lab: Lab) -> None:
        n = 200
        answers = [await lab.get(f"/abort/{i}") for i in range(n)]
        aborted = [a for a in answers if a[0] == 503]
        assert len(aborted) + sum(a == (200, b"ok") for a in answers) == n
        assert all(a == (503, b"fault filter abort\n") for a in aborted)
        sigma = math.sqrt(n * 0.25)
        assert abs(len(aborted) - n / 2) <= 5 * sigma  # Binomial(200, 0.5)
        assert len(lab.backend.received) == n - len(aborted)
        lab.server.flows.flush()
        drops = [f for f in lab.flows if f.verdict is Verdict.DROPPED]
        assert len(drops) == len(aborted)
        assert {f.drop_reason_desc for f in drops} == {"FAULT_ABORT"}

    run(body)


def test_a_delay_holds_the_request_its_time() -> None:
    async def body(lab: Lab) -> None:
        started = time.monotonic()
        assert await lab.get("/delay") == (200, b"ok")
        assert time.monotonic() - started >= 0.2  # a lower bound: the fault's own time
        assert len(lab.backend.received) == 1

    run(body)


def test_a_missing_fault_answers_500_and_is_not_skipped() -> None:
    async def body(lab: Lab) -> None:
        status, _ = await lab.get("/missing")
        assert status == 500
        assert lab.backend.received == []

    run(body)


def test_a_grpc_abort_answers_grpc_callers_with_a_grpc_status() -> None:
    async def body(lab: Lab) -> None:
        answer = await grpc_call(lab.port, b"/grpc.Echo/Say", b"\x00\x00\x00\x00\x02hi")
        assert answer["headers"][b":status"] == b"200"
        assert answer["headers"][b"grpc-status"] == b"14"  # UNAVAILABLE
        assert answer["data"] == b""
        assert lab.backend.received == []

    run(body)
