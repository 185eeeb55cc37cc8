"""TLSRoutes in process over 127.0.0.1: passthrough by SNI to backends that present their
own certificates, Terminate with the listener's certificate and a plaintext backend,
weights, and the refusals (unknown SNI, no SNI, not TLS, a silent client, an invalid
backend), each a DROPPED flow naming why."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from agent.flows.flow import Flow, Verdict
from l7proxy.config import Limits, load_config_text, waypoint_config
from l7proxy.server import WaypointServer
from tests.unit.l7proxy.test_clienthello import real_hello
from tests.unit.l7proxy.test_tls import (
    CertificateAuthority,
    Issued,
    client_context,
    served_names,
    tls_secret,
)

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tulle}
spec: {controllerName: tulle.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra}
spec:
  gatewayClassName: tulle
  listeners:
  - {name: pass, port: 443, protocol: TLS, tls: {mode: Passthrough},
     allowedRoutes: {namespaces: {from: All}}}
  - {name: term, port: 443, protocol: TLS, hostname: term.example,
     tls: {mode: Terminate, certificateRefs: [{name: term}]},
     allowedRoutes: {namespaces: {from: All}}}
"""


def service(name: str) -> str:
    return (f"---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
            "spec: {ports: [{port: 8443}]}\n")


def tls_route(name: str, hostnames: str, backends: str) -> str:
    return (
        f"---\napiVersion: gateway.networking.k8s.io/v1\nkind: TLSRoute\n"
        f"metadata: {{name: {name}, namespace: default}}\n"
        f"spec:\n  parentRefs: [{{name: edge, namespace: infra}}]\n"
        f"  hostnames: {hostnames}\n  rules: [{{backendRefs: {backends}}}]\n"
    )


ROUTES = (
    tls_route("a", "[a.example]", "[{name: a, port: 8443}]")
    + tls_route("b", "['*.b.example']", "[{name: b, port: 8443}]")
    + tls_route("split", "[split.example]",
                "[{name: a, port: 8443, weight: 3}, {name: b, port: 8443, weight: 1}]")
    + tls_route("gone", "[gone.example]", "[{name: nonexistent, port: 8443}]")
    + tls_route("empty", "[empty.example]", "[{name: missing, port: 8443}]")
    + tls_route("term", "[term.example]", "[{name: plain, port: 8443}]")
)


class Echo:
    """A backend that answers each line with ``<name>:<line>``, in TLS with its own
    certificate or in plaintext."""

    def __init__(self, name: str, context: ssl.SSLContext | None) -> None:
        self.name, self.context = name, context
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                writer.write(f"{self.name}:".encode() + line)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def server_context(issued: Issued) -> ssl.SSLContext:
    import tempfile

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile() as crt, tempfile.NamedTemporaryFile() as key:
        crt.write(issued.crt), key.write(issued.key)
        crt.flush(), key.flush()
        context.load_cert_chain(crt.name, key.name)
    return context


@dataclass
class Lab:
    server: WaypointServer
    port: int
    ca: CertificateAuthority
    backends: dict[str, Echo]
    flows: list[Flow]

    async def talk(
        self, sni: str | None, line: bytes = b"hi\n", pause: float = 0.0
    ) -> tuple[bytes, set[str]]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=client_context(self.ca), server_hostname=sni or ""
        )
        try:
            await asyncio.sleep(pause)  # the request after the backend is connected
            writer.write(line)
            return await asyncio.wait_for(reader.readline(), 10), served_names(writer)
        finally:
            writer.close()

    async def closed_on(self, data: bytes | None, sni: str | None = None) -> None:
        """Sends ``data`` raw (or a real ClientHello for ``sni``), expects the close."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        if data is not None:
            writer.write(data)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()

    async def dropped(self, reason: str) -> Flow:
        for _ in range(100):
            found = [f for f in self.flows if f.drop_reason_desc == reason]
            if found:
                assert found[0].verdict is Verdict.DROPPED
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no flow {reason} in {[f.drop_reason_desc for f in self.flows]}")


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    ca = CertificateAuthority()
    backends = {
        "a": Echo("a", server_context(ca.issue("a.example"))),
        "b": Echo("b", server_context(ca.issue("*.b.example", "split.example"))),
        "plain": Echo("plain", None),
    }
    ports = {name: await echo.start() for name, echo in backends.items()}
    endpoints = ", ".join(f"default/{n}:8443: ['127.0.0.1:{p}']" for n, p in ports.items())
    text = (
        GATEWAY + "".join(service(n) for n in (*backends, "missing")) + ROUTES
        + tls_secret("term", "infra", ca.issue("term.example"))
        + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
        "listeners: [{address: '127.0.0.1:0', parent: "
        "{kind: Gateway, namespace: infra, name: edge, port: 443}}]\n"
        f"endpoints: {{{endpoints}}}\n"
    )
    config = waypoint_config(load_config_text(text, "<tlsroute>"),
                             limits=Limits(header_timeout=0.5))
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend)
    [listen] = await server.start()
    try:
        yield Lab(server, listen, ca, backends, flows)
    finally:
        await server.close()
        for echo in backends.values():
            await echo.close()


def run(test: Callable[[Lab], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 30)

    asyncio.run(main())


def test_passthrough_reaches_the_backend_by_sni_and_shows_its_own_certificate() -> None:
    async def body(lab: Lab) -> None:
        assert await lab.talk("a.example") == (b"a:hi\n", {"a.example"})
        assert await lab.talk("x.y.b.example") == (b"b:hi\n", {"*.b.example", "split.example"})
        forwarded = [f for f in lab.flows if f.verdict is Verdict.FORWARDED]
        for _ in range(100):
            if len(forwarded) >= 2:
                break
            await asyncio.sleep(0.05)
            forwarded = [f for f in lab.flows if f.verdict is Verdict.FORWARDED]
        assert len(forwarded) == 2

    run(body)


def test_terminate_serves_the_listener_certificate_and_forwards_plaintext() -> None:
    async def body(lab: Lab) -> None:
        line, names = await lab.talk("term.example", b"clear text\n")
        assert (line, names) == (b"plain:clear text\n", {"term.example"})
        line, _ = await lab.talk("term.example", b"later\n", pause=0.3)
        assert line == b"plain:later\n"

    run(body)


def test_terminate_closes_a_client_that_stops_mid_handshake() -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        writer.write(real_hello("term.example"))  # then never answers the server's flight
        flight = await asyncio.wait_for(reader.read(), 10)  # to EOF: the waypoint closed
        assert flight[:1] == b"\x16"  # its ServerHello came first
        writer.close()
        await lab.dropped("TLS_HANDSHAKE_TIMEOUT")

    run(body)


def test_unknown_and_missing_server_names_are_closed_with_a_flow() -> None:
    async def body(lab: Lab) -> None:
        for sni in ("nobody.example", None):
            try:
                await lab.talk(sni)
            except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError) as exc:
                assert exc is not None
            else:
                raise AssertionError(f"{sni}: served")
        flow = await lab.dropped("TLS_NO_ROUTE")
        assert "nobody.example" in flow.summary or flow.l7 is not None

    run(body)


def test_not_tls_and_a_silent_client_are_closed_with_their_reasons() -> None:
    async def body(lab: Lab) -> None:
        await lab.closed_on(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        await lab.dropped("TLS_NOT_A_CLIENT_HELLO")
        await lab.closed_on(None)  # says nothing: closed after the header timeout
        await lab.dropped("TLS_CLIENT_HELLO_TIMEOUT")
        await lab.closed_on(b"\x16\x03\x01\x00")  # a record header cut short, then silence
        assert len([f for f in lab.flows if f.drop_reason_desc == "TLS_CLIENT_HELLO_TIMEOUT"])

    run(body)


def test_an_invalid_backend_or_one_without_endpoints_refuses_its_connections() -> None:
    async def body(lab: Lab) -> None:
        for sni in ("gone.example", "empty.example"):
            try:
                await lab.talk(sni)
            except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
                pass
            else:
                raise AssertionError(f"{sni}: served without a backend")
        await lab.dropped("TLS_BACKEND_INVALID")
        flow = await lab.dropped("UPSTREAM_CONNECT_FAILED")
        assert flow.l7 is not None

    run(body)


def test_weights_hold_within_a_binomial_bound() -> None:
    n = 80

    async def body(lab: Lab) -> None:
        got = [(await lab.talk("split.example"))[0][:2] for _ in range(n)]
        to_a = got.count(b"a:")
        assert to_a + got.count(b"b:") == n
        # weight 3:1, p = 0.75: mean 60, sd 3.9; 5 sd either side fails ~1 run in 3.5 million
        assert 60 - 20 < to_a < 60 + 20 and to_a != n

    run(body)
