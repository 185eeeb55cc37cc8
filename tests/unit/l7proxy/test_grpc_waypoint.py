"""GRPCRoute served by the waypoint in process over loopback, with real grpcio clients and
servers (generic handlers on raw bytes, so no generated code): method-based routing to two
backends over h2c, response metadata from a filter, and the gRPC errors the waypoint
answers itself (UNIMPLEMENTED for no route, UNAVAILABLE for no valid backend), trailers-
only so a gRPC client reads them; the flow names the route and carries the gRPC status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest

from agent.flows.flow import Flow
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config

ROUTES = """
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - name: hello
    matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    filters:
    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-routed, value: hello}]}}
    backendRefs: [{name: v1, port: 8080}]
  - name: rest
    matches: [{method: {service: helloworld.Greeter}}]
    backendRefs: [{name: v2, port: 8080}]
  - name: flaky
    matches: [{method: {service: helloworld.Greeter}, headers: [{name: x-flaky, value: "1"}]}]
    backendRefs: [{name: flaky, port: 8080}]
  - name: broken
    matches: [{method: {service: broken.Service}}]
    backendRefs: [{name: missing, port: 8080}]
"""


def _identity(data: bytes) -> bytes:
    return data


def _backend(name: str) -> grpc.aio.Server:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return f"{name}:".encode() + request

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


@dataclass
class Lab:
    server: WaypointServer
    channel: grpc.aio.Channel
    flows: list[Flow]

    async def call(
        self, method: str, body: bytes = b"hi", metadata: tuple[tuple[str, str], ...] = ()
    ) -> tuple[bytes, dict[str, str]]:
        call = self.channel.unary_unary(
            method, request_serializer=_identity, response_deserializer=_identity
        )(body, timeout=10, metadata=metadata)
        reply = await call
        metadata = {k: v for k, v in (await call.initial_metadata() or ())}
        return reply, metadata


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    backends = {name: _backend(name) for name in ("v1", "v2")}
    ports = {name: s.add_insecure_port("127.0.0.1:0") for name, s in backends.items()}
    for s in backends.values():
        await s.start()
    endpoints = {f"default/{n}:8080": [("127.0.0.1", p)] for n, p in ports.items()}
    # nothing listens on port 1: a try there is refused before the request goes out
    endpoints["default/flaky:8080"] = [("127.0.0.1", 1), ("127.0.0.1", ports["v1"])]
    config = gateway_config(ROUTES, endpoints, services=("v1", "v2", "flaky"))
    flows: list[Flow] = []
    # draws of 0: P2C tries the first endpoint of two equals first (the refused one)
    server = WaypointServer(config, flow_sink=flows.extend, rng=lambda: 0.0)
    [port] = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Lab(server, channel, flows)
    finally:
        await channel.close()
        await server.close()
        for s in backends.values():
            await s.stop(None)


def run(test: Callable[[Lab], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 30)

    asyncio.run(main())


def test_methods_route_to_their_backends_over_h2c() -> None:
    async def body(lab: Lab) -> None:
        reply, metadata = await lab.call("/helloworld.Greeter/SayHello", b"a")
        assert reply == b"v1:a"
        assert metadata.get("x-routed") == "hello"
        reply, metadata = await lab.call("/helloworld.Greeter/SayBye", b"b")
        assert reply == b"v2:b"
        assert "x-routed" not in metadata
        hello, bye = _flows(lab)
        assert hello.tulle is not None and hello.tulle.rule == "default/greeter#hello"
        assert hello.tulle.backend == "default/v1:8080"
        assert bye.tulle is not None and bye.tulle.rule == "default/greeter#rest"
        for flow, method in ((hello, "SayHello"), (bye, "SayBye")):
            assert flow.l7 is not None and flow.l7.http is not None
            assert flow.l7.http.url.endswith(f"/helloworld.Greeter/{method}")
            assert flow.l7.http.protocol == "HTTP/2"
            assert _grpc_status(flow) == "0"  # from the backend's trailers

    run(body)


def test_a_try_refused_before_the_request_went_out_is_retried() -> None:
    """GRPCRoute has no retry stanza; gRPC's transparent retries (gRFC A6) still apply."""

    async def body(lab: Lab) -> None:
        for i in range(8):
            # SayBye: the "flaky" rule's header match outranks "rest" (SayHello would go
            # by "hello": method characters come before header matches)
            reply, _ = await lab.call(
                "/helloworld.Greeter/SayBye", b"%d" % i, metadata=(("x-flaky", "1"),)
            )
            assert reply == b"v1:%d" % i  # flaky's live endpoint is v1's server
        assert {f.tulle.rule for f in _flows(lab) if f.tulle} == {"default/greeter#flaky"}

    run(body)


def _flows(lab: Lab) -> list[Flow]:
    lab.server.flows.flush()
    return list(lab.flows)


def _grpc_status(flow: Flow) -> str | None:
    assert flow.l7 is not None and flow.l7.http is not None
    found = [h.value for h in flow.l7.http.headers if h.key == "grpc-status"]
    return found[0] if found else None


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("/other.Service/Call", grpc.StatusCode.UNIMPLEMENTED),
        ("/broken.Service/Call", grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_what_the_waypoint_answers_itself_is_a_grpc_status(
    method: str, code: grpc.StatusCode
) -> None:
    async def body(lab: Lab) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await lab.call(method)
        assert info.value.code() is code
        [flow] = _flows(lab)
        assert _grpc_status(flow) == str(code.value[0])
        assert flow.l7 is not None and flow.l7.http is not None
        assert flow.l7.http.code == 200  # trailers-only: HTTP 200, the error in grpc-status

    run(body)
