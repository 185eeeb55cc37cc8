"""Session persistence on a GRPCRoute through the waypoint in process: real grpcio client and
three grpcio servers (one Service, three endpoints) over h2c. Type Header: the token comes
back in the response metadata and, sent again as request metadata, keeps every call on one
server; type Cookie: Set-Cookie in the metadata, sent back as a cookie, does the same. Calls
without a token spread (ROUND_ROBIN). GEP-1619's GRPCRoute conformance plan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio

from l7proxy.resilience.params import BackendParams
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    sessionPersistence: {type: Header, sessionName: x-session}
    backendRefs: [{name: web, port: 8080}]
  - matches: [{method: {service: helloworld.Greeter, method: SayBye}}]
    sessionPersistence: {sessionName: grpc-cookie}
    backendRefs: [{name: web, port: 8080}]
"""
N = 9


def _identity(data: bytes) -> bytes:
    return data


def _backend(name: str) -> grpc.aio.Server:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return name.encode()

    handler = grpc.method_handlers_generic_handler(
        "helloworld.Greeter",
        {
            method: grpc.unary_unary_rpc_method_handler(
                echo, request_deserializer=_identity, response_serializer=_identity
            )
            for method in ("SayHello", "SayBye")
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    return server


Call = Callable[[str, tuple[tuple[str, str], ...]], Coroutine[Any, Any, tuple[str, dict[str, str]]]]


@asynccontextmanager
async def waypoint() -> AsyncIterator[Call]:
    backends = [_backend(str(i)) for i in range(3)]
    ports = [s.add_insecure_port("127.0.0.1:0") for s in backends]
    for s in backends:
        await s.start()
    config = gateway_config(
        ROUTES, {"default/web:8080": [("127.0.0.1", p) for p in ports]}, services=("web",),
        protocols={"default/web:8080": "h2c"},
    )
    config.backend_params = {("default", "web"): BackendParams(balancer="ROUND_ROBIN")}
    server = WaypointServer(config)
    [port] = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def call(
        method: str, metadata: tuple[tuple[str, str], ...] = ()
    ) -> tuple[str, dict[str, str]]:
        rpc = channel.unary_unary(
            f"/helloworld.Greeter/{method}",
            request_serializer=_identity, response_deserializer=_identity,
        )(b"hi", timeout=10, metadata=metadata)
        reply = await rpc
        return reply.decode(), {k: str(v) for k, v in (await rpc.initial_metadata() or ())}

    try:
        yield call
    finally:
        await channel.close()
        await server.close()
        for s in backends:
            await s.stop(None)


def run(test: Callable[[Call], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with waypoint() as call:
            await asyncio.wait_for(test(call), 60)

    asyncio.run(main())


def test_header_session_keeps_calls_on_one_server() -> None:
    async def body(call: Call) -> None:
        first, metadata = await call("SayHello", ())
        token = metadata["x-session"]
        for _ in range(N):
            server, metadata = await call("SayHello", (("x-session", token),))
            assert server == first and metadata["x-session"] == token
        assert len({(await call("SayHello", ()))[0] for _ in range(N)}) == 3

    run(body)


def test_cookie_session_keeps_calls_on_one_server() -> None:
    async def body(call: Call) -> None:
        first, metadata = await call("SayBye", ())
        jar = metadata["set-cookie"].split(";", 1)[0]
        assert jar.startswith("grpc-cookie=") and "Max-Age" not in metadata["set-cookie"]
        for _ in range(N):
            server, metadata = await call("SayBye", (("cookie", jar),))
            assert server == first and "set-cookie" not in metadata
        # a garbled cookie is nothing: balanced as if absent
        assert len({(await call("SayBye", (("cookie", "grpc-cookie=%%%"),)))[0]
                    for _ in range(N)}) == 3

    run(body)
