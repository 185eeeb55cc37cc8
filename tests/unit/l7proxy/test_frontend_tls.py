"""Client-certificate validation on HTTPS Gateway listeners (GEP-91), in process over
127.0.0.1: port 443 AllowValidOnly (the default), port 8443 AllowInsecureFallback (perPort).

Attacks: no certificate, a certificate of another CA, an expired one, a leaf whose
intermediate is neither sent nor in the bundle, garbage PEM in the ConfigMap (the port is
not served at all, never without validation), and a CA rotation that new connections see."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.flows.flow import Flow
from gatewayapi import GatewayParent
from l7proxy.config import load_config_text, waypoint_config
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import GATEWAY_PREAMBLE, RawBackend, read_response

pytest.importorskip("cryptography")
from tests.unit.l7proxy.frontend_pki import (  # noqa: E402
    Authority,
    Leaf,
    ca_config_map,
    tls_secret,
)

GATEWAY = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra}
spec:
  gatewayClassName: tulle
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]
      perPort:
      - port: 8443
        tls:
          validation:
            caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]
            mode: AllowInsecureFallback
  listeners:
  - {name: strict, port: 443, protocol: HTTPS,
     tls: {certificateRefs: [{name: server}]}, allowedRoutes: {namespaces: {from: All}}}
  - {name: fallback, port: 8443, protocol: HTTPS,
     tls: {certificateRefs: [{name: server}]}, allowedRoutes: {namespaces: {from: All}}}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: app, namespace: default}
spec:
  parentRefs: [{name: web, namespace: infra}]
  rules:
  - backendRefs: [{name: app, port: 8080}]
"""

STRICT = GatewayParent("infra", "web", 443)


def config_text(server_ca: Authority, server: Leaf, client_ca_pem: bytes | str,
                backend: int) -> str:
    return (
        GATEWAY_PREAMBLE + GATEWAY
        + tls_secret("server", "infra", server)
        + ca_config_map("client-ca", "infra", client_ca_pem)
        + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
        "listeners:\n"
        "- {address: '127.0.0.1:0', parent: {kind: Gateway, namespace: infra, name: web, "
        "port: 443}}\n"
        "- {address: '127.0.0.1:0', parent: {kind: Gateway, namespace: infra, name: web, "
        "port: 8443}}\n"
        f"endpoints: {{default/app:8080: ['127.0.0.1:{backend}']}}\n"
    )


async def answer(head: RequestHead, body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Lab:
    server: WaypointServer
    strict: int
    fallback: int
    server_ca: Authority
    client_ca: Authority
    flows: list[Flow]
    tmp: Path
    backend: int

    async def get(self, port: int, leaf: Leaf | None = None) -> int | None:
        """The response status, or None when the handshake (or the connection) failed."""
        context = ssl.create_default_context(cadata=self.server_ca.pem.decode())
        context.check_hostname = False
        if leaf is not None:
            context.load_cert_chain(*leaf.files(self.tmp, f"client{id(leaf)}"))
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=context, server_hostname="web.example"
            )
        except (ssl.SSLError, ConnectionError):
            return None
        try:
            # TLS 1.3: the client's handshake ends before the server checks its
            # certificate, so a refusal shows on the first read.
            writer.write(b"GET / HTTP/1.1\r\nHost: web.example\r\n\r\n")
            status, _, _ = await asyncio.wait_for(read_response(reader), 10)
            return status
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            return None
        finally:
            writer.close()


@asynccontextmanager
async def lab(tmp: Path, client_ca_pem: Callable[[Authority], bytes | str] | None = None
              ) -> AsyncIterator[Lab]:
    server_ca, client_ca = Authority("server CA"), Authority("client CA")
    backend = RawBackend(answer)
    port = await backend.start()
    pem = client_ca_pem(client_ca) if client_ca_pem else client_ca.pem
    text = config_text(server_ca, server_ca.issue("web.example"), pem, port)
    flows: list[Flow] = []
    server = WaypointServer(waypoint_config(load_config_text(text, "<frontend>")),
                            flow_sink=flows.extend)
    strict, fallback = await server.start()
    try:
        yield Lab(server, strict, fallback, server_ca, client_ca, flows, tmp, port)
    finally:
        await server.close()
        await backend.close()


def run(tmp: Path, test: Callable[[Lab], Coroutine[Any, Any, None]],
        client_ca_pem: Callable[[Authority], bytes | str] | None = None) -> None:
    async def main() -> None:
        async with lab(tmp, client_ca_pem) as the_lab:
            await asyncio.wait_for(test(the_lab), 30)

    asyncio.run(main())


def test_allow_valid_only_serves_a_client_certificate_of_the_ca(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert await lab.get(lab.strict, lab.client_ca.issue("alice", client=True)) == 200
        assert lab.server.tls.metrics.refused == {}

    run(tmp_path, body)


def test_allow_valid_only_refuses_no_foreign_or_expired_certificates(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert await lab.get(lab.strict) is None
        assert await lab.get(lab.strict, Authority("rogue CA").issue("eve", client=True)) is None
        assert await lab.get(lab.strict, lab.client_ca.issue("old", client=True,
                                                             expired=True)) is None
        assert lab.server.tls.metrics.refused == {"TLS_HANDSHAKE_FAILED": 3}
        await asyncio.sleep(0.3)  # flows are batched
        summaries = [f.summary for f in lab.flows if f.drop_reason_desc == "TLS_HANDSHAKE_FAILED"]
        assert len(summaries) == 3
        assert any("CERTIFICATE" in s.upper() for s in summaries), summaries
        # a valid client still gets through afterwards
        assert await lab.get(lab.strict, lab.client_ca.issue("bob", client=True)) == 200

    run(tmp_path, body)


def test_an_intermediate_neither_sent_nor_in_the_bundle_is_refused(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        intermediate = Authority("client intermediate", parent=lab.client_ca)
        chained = intermediate.issue("carol", client=True)
        assert chained.chain  # the leaf with its intermediate verifies up to the root
        assert await lab.get(lab.strict, chained) == 200
        bare = Leaf(chained.crt, chained.key)  # the intermediate left out
        assert await lab.get(lab.strict, bare) is None

    run(tmp_path, body)


def test_insecure_fallback_serves_clients_without_a_valid_certificate(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        assert await lab.get(lab.fallback) == 200
        assert await lab.get(lab.fallback, Authority("rogue CA").issue("eve", client=True)) == 200
        assert await lab.get(lab.fallback, lab.client_ca.issue("alice", client=True)) == 200
        assert await lab.get(lab.strict) is None  # the override is for its port only

    run(tmp_path, body)


def test_garbage_ca_pem_leaves_the_port_unserved_never_insecure(tmp_path: Path) -> None:
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

    async def body(lab: Lab) -> None:
        assert STRICT not in lab.server.tls.ports  # the listener is not programmed
        assert await lab.get(lab.strict) is None
        assert await lab.get(lab.strict, lab.client_ca.issue("alice", client=True)) is None
        assert lab.server.tls.metrics.handshakes == 0

    run(tmp_path, body, client_ca_pem=lambda _ca: garbage)


def test_a_rotated_ca_applies_to_new_connections(tmp_path: Path) -> None:
    async def body(lab: Lab) -> None:
        old_client = lab.client_ca.issue("alice", client=True)
        assert await lab.get(lab.strict, old_client) == 200
        rotated = Authority("client CA 2")
        text = config_text(lab.server_ca, lab.server_ca.issue("web.example"), rotated.pem,
                           lab.backend)
        config = waypoint_config(load_config_text(text, "<rotated>"))
        lab.server.update(tables=config.tables, certificates=config.certificates)
        assert await lab.get(lab.strict, old_client) is None
        assert await lab.get(lab.strict, rotated.issue("alice", client=True)) == 200

    run(tmp_path, body)
