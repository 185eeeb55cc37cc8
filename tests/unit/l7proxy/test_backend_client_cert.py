"""The Gateway's client certificate toward backends (GEP-3155) in the waypoint: a backend
that requires a client certificate (``ssl.CERT_REQUIRED``) behind a BackendTLSPolicy is
reached with the Gateway's (200, and the backend saw that certificate), refused without one
or with one its CA did not issue (503; TLS 1.3 ends such a session after the
handshake, so the flow says UPSTREAM_RESET); a rotated Secret is presented
on the next connection; mesh requests (a Service parent) never present a Gateway's."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from agent.flows.flow import Verdict
from gatewayapi import GatewayParent, ServiceParent
from gatewayapi.backendclientcert import ClientCertificate
from gatewayapi.backendtls import UpstreamTLS
from gatewayapi.types import BackendTarget
from l7proxy.backendtls import BackendTLSError, client_context, from_policy
from l7proxy.server import WaypointServer
from l7proxy.testing import gateway_config
from tests.unit.l7proxy.test_retry_connection_errors import get

pytest.importorskip("cryptography")
from tests.unit.l7proxy.frontend_pki import Authority, Leaf  # noqa: E402

HOST = "secure.default.svc.cluster.local"
ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: main, namespace: default}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: secure, port: 8080}]
"""
SECURE = BackendTarget("default", "secure", 8080)
REFUSED = "UPSTREAM_RESET"
"""In TLS 1.3 the server judges the client certificate after the client's handshake is
done: the refusal (an alert, which asyncio reports as a close) ends the connection as the
request goes, so the flow says the backend reset it, and the client gets 503."""


def _backend_context(server_ca: Authority, client_ca: Authority, tmp: Path) -> ssl.SSLContext:
    """A backend that requires a client certificate ``client_ca`` issued."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*server_ca.issue(HOST).files(tmp, "backend"))
    context.load_verify_locations(cadata=client_ca.pem.decode())
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _serve_peer_names(context: ssl.SSLContext) -> asyncio.Server:
    """Answers each request with the common name of the client certificate it got."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        subject = dict(x[0] for x in (writer.get_extra_info("peercert") or {})["subject"])
        body = str(subject.get("commonName", "")).encode()
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)


def _certificate(leaf: Leaf) -> ClientCertificate:
    return ClientCertificate("infra/gw", leaf.crt, leaf.key)


def _requests(
    context: ssl.SSLContext, tls: UpstreamTLS, presented: list[ClientCertificate | None]
) -> tuple[list[tuple[int, bytes]], list[Any]]:
    """One GET through the Gateway per entry of ``presented``, with that as the Gateway's
    client certificate (None: it names none) when the request is made."""

    async def main() -> tuple[list[tuple[int, bytes]], list[Any]]:
        backend = await _serve_peer_names(context)
        port = backend.sockets[0].getsockname()[1]
        flows: list[Any] = []
        config = gateway_config(
            ROUTE, {"default/secure:8080": [("127.0.0.1", port)]}, services=("secure",)
        )
        server = WaypointServer(config, flow_sink=flows.extend)
        server.proxy.backend_tls = {("default", "secure", 8080): tls}
        [listen] = await server.start()
        answers = []
        try:
            for certificate in presented:
                server.proxy.client_certificates = (
                    {} if certificate is None else {("infra", "gw"): certificate}
                )
                answers.append(await get(listen, "/"))
            await asyncio.sleep(0.05)  # the flow is recorded after the answer
            return answers, flows
        finally:
            await server.close()
            backend.close()

    return asyncio.run(asyncio.wait_for(main(), 30))


def _drops(flows: list[Any]) -> list[str]:
    return [f.drop_reason_desc for f in flows if f.verdict is Verdict.DROPPED]


def test_the_gateways_certificate_reaches_a_backend_that_requires_one(tmp_path: Path) -> None:
    server_ca, client_ca = Authority("backend CA"), Authority("gateway client CA")
    tls = UpstreamTLS("default/secure", HOST, server_ca.pem)
    leaf = client_ca.issue("gateway-a", client=True)
    answers, flows = _requests(_backend_context(server_ca, client_ca, tmp_path), tls,
                               [_certificate(leaf)])
    assert answers == [(200, b"gateway-a")] and _drops(flows) == []


def test_without_a_client_certificate_the_backend_refuses_it(tmp_path: Path) -> None:
    server_ca, client_ca = Authority("backend CA"), Authority("gateway client CA")
    tls = UpstreamTLS("default/secure", HOST, server_ca.pem)
    answers, flows = _requests(_backend_context(server_ca, client_ca, tmp_path), tls, [None])
    assert answers[0][0] == 503 and _drops(flows) == [REFUSED]


def test_a_certificate_another_ca_issued_is_refused(tmp_path: Path) -> None:
    server_ca, client_ca = Authority("backend CA"), Authority("gateway client CA")
    tls = UpstreamTLS("default/secure", HOST, server_ca.pem)
    stranger = Authority("another CA").issue("gateway-a", client=True)
    answers, flows = _requests(_backend_context(server_ca, client_ca, tmp_path), tls,
                               [_certificate(stranger)])
    assert answers[0][0] == 503 and _drops(flows) == [REFUSED]


def test_a_rotated_secret_is_presented_on_the_next_connection(tmp_path: Path) -> None:
    server_ca, client_ca = Authority("backend CA"), Authority("gateway client CA")
    tls = UpstreamTLS("default/secure", HOST, server_ca.pem)
    first = _certificate(client_ca.issue("before", client=True))
    second = _certificate(client_ca.issue("after", client=True))
    answers, _ = _requests(_backend_context(server_ca, client_ca, tmp_path), tls,
                           [first, first, second, None])
    assert [a for a in answers[:3]] == [(200, b"before"), (200, b"before"), (200, b"after")]
    assert answers[3][0] == 503  # the reference went away: the pooled mutual ones unused


def test_mesh_requests_never_present_a_gateways_certificate(tmp_path: Path) -> None:
    config = gateway_config(ROUTE, {}, services=("secure",))
    server = WaypointServer(config, flow_sink=lambda _: None)
    tls = UpstreamTLS("default/secure", HOST, b"")
    certificate = _certificate(Authority("ca").issue("gw", client=True))
    server.proxy.backend_tls = {("default", "secure", 8080): tls}
    server.proxy.client_certificates = {("infra", "gw"): certificate}
    assert server.proxy.upstream_tls(SECURE, ServiceParent("default", "secure", 8080)) is tls
    assert server.proxy.upstream_tls(SECURE, GatewayParent("infra", "other", 80)) is tls
    through = server.proxy.upstream_tls(SECURE, GatewayParent("infra", "gw", 80))
    assert through is not None and through.client_certificate == certificate
    assert server.proxy.upstream_tls(BackendTarget("default", "plain", 80),
                                     GatewayParent("infra", "gw", 80)) is None


def test_a_key_that_does_not_match_fails_closed_in_the_context() -> None:
    ca = Authority("ca")
    one, other = ca.issue("a", client=True), ca.issue("b", client=True)
    tls = UpstreamTLS("p", HOST, ca.pem, client_certificate=ClientCertificate(
        "infra/gw", one.crt, other.key))
    with pytest.raises(BackendTLSError, match="client certificate unusable"):
        client_context(from_policy(tls))
