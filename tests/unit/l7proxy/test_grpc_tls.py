"""GRPCRoute on an HTTPS listener: the waypoint offers ALPN h2 (GRPCRoute: "MUST accept
HTTP/2 connections without an initial upgrade from HTTP/1.1, i.e. via ALPN") and a real
grpcio client calls through it over TLS; a client offering only http/1.1 keeps it."""

from __future__ import annotations

import asyncio
import ssl

import grpc
import grpc.aio
import pytest

from agent.flows.flow import Flow
from l7proxy.config import load_config_text, waypoint_config
from l7proxy.server import WaypointServer
from l7proxy.testing import GATEWAY_PREAMBLE, read_response
from tests.unit.l7proxy.test_grpc_waypoint import _backend, _identity
from tests.unit.l7proxy.test_tls import CertificateAuthority, tls_secret

GATEWAY = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra}
spec:
  gatewayClassName: tulle
  listeners:
  - {name: grpc, port: 443, protocol: HTTPS, hostname: grpc.example,
     tls: {certificateRefs: [{name: grpc}]}, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: v1, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: greeter, namespace: default}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules:
  - matches: [{method: {service: helloworld.Greeter}}]
    backendRefs: [{name: v1, port: 8080}]
"""


async def _scenario() -> None:
    ca = CertificateAuthority()
    backend = _backend("v1")
    backend_port = backend.add_insecure_port("127.0.0.1:0")
    await backend.start()
    text = (
        GATEWAY_PREAMBLE
        + GATEWAY
        + tls_secret("grpc", "infra", ca.issue("grpc.example"))
        + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
        "listeners: [{address: '127.0.0.1:0', parent: "
        "{kind: Gateway, namespace: infra, name: web, port: 443}}]\n"
        f"endpoints: {{default/v1:8080: ['127.0.0.1:{backend_port}']}}\n"
    )
    flows: list[Flow] = []
    server = WaypointServer(waypoint_config(load_config_text(text, "<grpc-tls>")),
                            flow_sink=flows.extend)
    [port] = await server.start()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.pem)
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        credentials,
        options=(
            ("grpc.ssl_target_name_override", "grpc.example"),
            ("grpc.default_authority", "grpc.example"),
        ),
    )
    try:
        call = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=_identity,
            response_deserializer=_identity,
        )
        assert await call(b"tls", timeout=10) == b"v1:tls"
        server.flows.flush()
        [flow] = flows[:1]
        assert flow.l7 is not None and flow.l7.http is not None
        assert flow.l7.http.protocol == "HTTP/2"
        assert flow.l7.http.url == "https://grpc.example/helloworld.Greeter/SayHello"

        # A Host (:authority) that is not the SNI's listener is misdirected over h2 too
        other = grpc.aio.secure_channel(
            f"127.0.0.1:{port}",
            credentials,
            options=(
                ("grpc.ssl_target_name_override", "grpc.example"),
                ("grpc.default_authority", "other.example"),
            ),
        )
        try:
            misdirected = other.unary_unary(
                "/helloworld.Greeter/SayHello",
                request_serializer=_identity,
                response_deserializer=_identity,
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await misdirected(b"x", timeout=10)
            assert info.value.code() is not grpc.StatusCode.OK
        finally:
            await other.close()
        server.flows.flush()
        assert flows[-1].drop_reason_desc == "MISDIRECTED_REQUEST"

        # A client offering only http/1.1 still gets HTTP/1.1 (routed by HTTPRoutes: none
        # here, so 404).
        context = ssl.create_default_context(cadata=ca.pem.decode())
        context.set_alpn_protocols(["http/1.1"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="grpc.example"
        )
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.write(b"GET / HTTP/1.1\r\nHost: grpc.example\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 10)
        assert status == 404
        writer.close()
    finally:
        await channel.close()
        await server.close()
        await backend.stop(None)


def test_grpc_over_tls_negotiates_h2_by_alpn() -> None:
    asyncio.run(asyncio.wait_for(_scenario(), 30))
