"""An IngressClass served by the waypoint, in process over 127.0.0.1: hosts and paths on
port 80, TLS by SNI with each host's Secret on 443 (a one-label wildcard), a missing or
invalid Secret refusing the handshake (never another certificate), 421 for a Host that
SNI did not choose, the defaultBackend, 404, and flows naming the Ingress."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from agent.flows.flow import Flow, Verdict
from l7proxy.config import load_config_text, waypoint_config
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import RawBackend, read_response
from tests.unit.l7proxy.test_tls import (
    CertificateAuthority,
    Issued,
    client_context,
    other_key,
    served_names,
    tls_secret,
)

pytest.importorskip("cryptography.x509")

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: tulle}
spec: {controller: tulle.io/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec: {ports: [{port: 8080, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: fallback, namespace: default}
spec: {ports: [{port: 8080}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: tulle
  defaultBackend: {service: {name: fallback, port: {number: 8080}}}
  tls:
  - {hosts: [shop.example, "*.wild.example"], secretName: shop}
  - {hosts: [broken.example], secretName: broken}
  - {hosts: [missing.example], secretName: nosuch}
  rules:
  - host: shop.example
    http: {paths: [{path: /, pathType: Prefix,
                    backend: {service: {name: app, port: {name: http}}}}]}
  - host: "*.wild.example"
    http: {paths: [{path: /api, pathType: Prefix,
                    backend: {service: {name: app, port: {number: 8080}}}}]}
  - host: plain.example
    http: {paths: [{path: /exact, pathType: Exact,
                    backend: {service: {name: app, port: {number: 8080}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: theirs, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: theirs.example
    http: {paths: [{path: /, pathType: Prefix,
                    backend: {service: {name: app, port: {number: 8080}}}}]}
"""


def replier(name: bytes):
    async def answer(head: RequestHead, body: bytes) -> bytes:
        proto = dict((n.lower(), v) for n, v in head.headers).get(b"x-forwarded-proto", b"")
        reply = name + b" " + head.target.encode() + b" " + proto
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(reply), reply)

    return answer


@dataclass
class Lab:
    server: WaypointServer
    http: int
    https: int
    ca: CertificateAuthority
    flows: list[Flow]

    async def get(self, host: str, path: str = "/", sni: str | None = None,
                  tls: bool = False) -> tuple[int, bytes, set[str]]:
        port = self.https if tls else self.http
        context = client_context(self.ca) if tls else None
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=(sni or "") if tls else None
        )
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, _, body = await asyncio.wait_for(read_response(reader), 10)
            return status, body, served_names(writer) if tls else set()
        finally:
            writer.close()


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    ca = CertificateAuthority()
    broken = ca.issue("broken.example")
    secrets = (
        tls_secret("shop", "default", ca.issue("shop.example", "*.wild.example"))
        + tls_secret("broken", "default", Issued(broken.crt, other_key()))
    )
    app, fallback = RawBackend(replier(b"app")), RawBackend(replier(b"fallback"))
    app_port, fallback_port = await app.start(), await fallback.start()
    text = (
        INGRESS + secrets
        + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
        "listeners:\n"
        "- {address: '127.0.0.1:0', parent: {kind: IngressClass, name: tulle, port: 80}}\n"
        "- {address: '127.0.0.1:0', parent: {kind: IngressClass, name: tulle, port: 443}}\n"
        f"endpoints: {{default/app:8080: ['127.0.0.1:{app_port}'],"
        f" default/fallback:8080: ['127.0.0.1:{fallback_port}']}}\n"
    )
    flows: list[Flow] = []
    server = WaypointServer(waypoint_config(load_config_text(text, "<ingress>")),
                            flow_sink=flows.extend)
    http, https = await server.start()
    try:
        yield Lab(server, http, https, ca, flows)
    finally:
        await server.close()
        await app.close()
        await fallback.close()


def run(test) -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 20)

    asyncio.run(main())


def test_hosts_paths_default_backend_and_404_on_port_80() -> None:
    async def body(lab: Lab) -> None:
        assert await lab.get("shop.example", "/cart") == (200, b"app /cart http", set())
        assert (await lab.get("Shop.Example.:80", "/"))[1] == b"app / http"
        assert (await lab.get("x.wild.example", "/api/v1"))[1] == b"app /api/v1 http"
        # two labels under the wildcard: not its rule, so the defaultBackend
        assert (await lab.get("y.x.wild.example", "/api"))[1] == b"fallback /api http"
        assert (await lab.get("plain.example", "/exact"))[1] == b"app /exact http"
        assert (await lab.get("plain.example", "/exact/"))[1] == b"fallback /exact/ http"
        # traversal is normalized before matching, and forwarded normalized
        assert (await lab.get("plain.example", "/x/../exact"))[1] == b"app /exact http"
        assert (await lab.get("plain.example", "/x/%2e%2e/exact"))[1] == b"app /exact http"
        assert (await lab.get("plain.example", "/x%2f..%2fexact"))[0] == 400
        # another class's Ingress is not served: its host takes the defaultBackend
        assert (await lab.get("theirs.example", "/"))[1] == b"fallback / http"
        await asyncio.sleep(0.3)  # flows are batched
        routed = [f for f in lab.flows if f.l7 and f.l7.http and f.l7.http.code == 200]
        assert routed and all(f.verdict is Verdict.FORWARDED for f in routed)
        named = {(f.tulle.route, f.tulle.rule) for f in routed if f.tulle is not None}
        assert ("default/web", "default/web#rules[0].paths[0]") in named
        assert ("default/web", "default/web#defaultBackend") in named

    run(body)


def test_https_by_sni_with_each_hosts_secret() -> None:
    async def body(lab: Lab) -> None:
        status, reply, names = await lab.get("shop.example", "/", "shop.example", tls=True)
        assert (status, reply) == (200, b"app / https")
        assert names == {"shop.example", "*.wild.example"}
        status, reply, _ = await lab.get("a.wild.example", "/api", "a.wild.example", tls=True)
        assert (status, reply) == (200, b"app /api https")

    run(body)


@pytest.mark.parametrize(
    ("sni", "reason"),
    [
        ("broken.example", "TLS_INVALID_CERTIFICATE"),  # the key is not the certificate's
        ("missing.example", "TLS_INVALID_CERTIFICATE"),  # its Secret does not exist
        ("plain.example", "TLS_NO_CERTIFICATE"),  # a host without TLS
        ("a.b.wild.example", "TLS_NO_CERTIFICATE"),  # the wildcard covers one label
        (None, "TLS_NO_CERTIFICATE"),
    ],
)
def test_no_certificate_but_the_hosts_own(sni: str | None, reason: str) -> None:
    async def body(lab: Lab) -> None:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await lab.get(sni or "shop.example", "/", sni, tls=True)
        assert lab.server.tls.metrics.refused == {reason: 1}
        refused = [f for f in lab.flows if f.drop_reason_desc == reason]
        assert len(refused) == 1 and refused[0].verdict is Verdict.DROPPED

    run(body)


def test_host_not_chosen_by_sni_gets_421() -> None:
    async def body(lab: Lab) -> None:
        status, _, names = await lab.get("plain.example", "/exact", "shop.example", tls=True)
        assert (status, names) == (421, {"shop.example", "*.wild.example"})
        status, _, _ = await lab.get("broken.example", "/", "shop.example", tls=True)
        assert status == 421
        status, _, _ = await lab.get("x.wild.example:443", "/api", "shop.example", tls=True)
        assert status == 200  # the same certificate covers both names

    run(body)


def test_port_443_without_tls_hosts_is_refused_not_plain_http() -> None:
    async def body() -> None:
        text = (
            INGRESS.replace("  tls:\n", "  tlsOff:\n")  # no spec.tls (unknown fields are dropped)
            + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
            "listeners:\n"
            "- {address: '127.0.0.1:0', parent: {kind: IngressClass, name: tulle, port: 443}}\n"
            "endpoints: {default/app:8080: ['127.0.0.1:9']}\n"
        )
        flows: list[Flow] = []
        server = WaypointServer(waypoint_config(load_config_text(text, "<no-tls>")),
                                flow_sink=flows.extend)
        [port] = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                data = await asyncio.wait_for(reader.read(), 5)
                if not data:
                    raise ConnectionResetError("closed")
            writer.close()
            await asyncio.sleep(0.3)  # flows are batched
            assert [f.drop_reason_desc for f in flows] == ["TLS_NO_CERTIFICATE"]
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(body(), 20))
