"""HTTPS Gateway listeners, in process over 127.0.0.1: certificates chosen by SNI (exact,
wildcard, the listener without hostname), 421 when the Host is another listener's, a bad
key refused at the handshake with a DROPPED flow and a counter, X-Forwarded-Proto https,
and certificates swapped on update without rebuilding unchanged contexts."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.flows.flow import Flow, Verdict
from agent.model.convert import from_dict
from gatewayapi import CONTROLLER_NAME, GatewayParent, RoutingInputs, compute_status
from l7proxy.config import load_config_text, waypoint_config
from l7proxy.http import RequestHead
from l7proxy.server import WaypointServer
from l7proxy.testing import GATEWAY_PREAMBLE, RawBackend, read_response
from l7proxy.tls import (
    CertificateError,
    ListenerCertificate,
    TlsPort,
    certificate_context,
    certificate_problem,
)

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

# --- certificates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    crt: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class CertificateAuthority:
    """A throwaway CA issuing leaf certificates for DNS names (ECDSA P-256)."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tulle test CA")])
        self.name = name
        self.cert = (
            self._builder(name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(self, subject: Any, public_key: Any) -> Any:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, *dns_names: str) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
        cert = (
            self._builder(subject, key.public_key())
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def other_key() -> bytes:
    return _key_pem(ec.generate_private_key(ec.SECP256R1()))


def tls_secret(name: str, namespace: str, issued: Issued) -> str:
    crt = base64.b64encode(issued.crt).decode()
    key = base64.b64encode(issued.key).decode()
    return (
        f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"type: kubernetes.io/tls\ndata: {{tls.crt: {crt}, tls.key: {key}}}\n"
    )


def client_context(ca: CertificateAuthority) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.pem.decode())
    context.check_hostname = False  # the tests check the names they were served
    return context


def served_names(writer: asyncio.StreamWriter) -> set[str]:
    cert = writer.get_extra_info("peercert") or {}
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


# --- a Gateway with HTTPS listeners ------------------------------------------------------

GATEWAY = """\
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: infra}
spec:
  gatewayClassName: tulle
  listeners:
  - {name: exact, port: 443, protocol: HTTPS, hostname: web.example,
     tls: {certificateRefs: [{name: web}]}, allowedRoutes: {namespaces: {from: All}}}
  - {name: wild, port: 443, protocol: HTTPS, hostname: "*.wild.example",
     tls: {certificateRefs: [{name: wild}]}, allowedRoutes: {namespaces: {from: All}}}
  - {name: default, port: 443, protocol: HTTPS,
     tls: {certificateRefs: [{name: fallback}]}, allowedRoutes: {namespaces: {from: All}}}
  - {name: broken, port: 443, protocol: HTTPS, hostname: broken.example,
     tls: {certificateRefs: [{name: broken}]}, allowedRoutes: {namespaces: {from: All}}}
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

PARENT = GatewayParent("infra", "web", 443)


async def answer(head: RequestHead, body: bytes) -> bytes:
    proto = dict((n.lower(), v) for n, v in head.headers).get(b"x-forwarded-proto", b"")
    reply = b"proto=" + proto
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(reply), reply)


@dataclass
class Lab:
    server: WaypointServer
    port: int
    ca: CertificateAuthority
    certs: dict[str, Issued]
    flows: list[Flow]

    async def get(
        self, sni: str | None, host: str, path: str = "/"
    ) -> tuple[int, dict[str, str], bytes, set[str]]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=client_context(self.ca), server_hostname=sni or ""
        )
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, headers, body = await asyncio.wait_for(read_response(reader), 10)
            return status, headers, body, served_names(writer)
        finally:
            writer.close()


def gateway_text(ca: CertificateAuthority, certs: dict[str, Issued], backend: int) -> str:
    secrets = "".join(tls_secret(name, "infra", issued) for name, issued in certs.items())
    return (
        GATEWAY_PREAMBLE
        + GATEWAY
        + secrets
        + "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
        "listeners: [{address: '127.0.0.1:0', parent: "
        "{kind: Gateway, namespace: infra, name: web, port: 443}}]\n"
        f"endpoints: {{default/app:8080: ['127.0.0.1:{backend}']}}\n"
    )


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    ca = CertificateAuthority()
    broken = ca.issue("broken.example")
    certs = {
        "web": ca.issue("web.example"),
        "wild": ca.issue("*.wild.example"),
        "fallback": ca.issue("fallback.example"),
        "broken": Issued(broken.crt, other_key()),  # the key is not the certificate's
    }
    backend = RawBackend(answer)
    port = await backend.start()
    config = waypoint_config(load_config_text(gateway_text(ca, certs, port), "<tls>"))
    flows: list[Flow] = []
    server = WaypointServer(config, flow_sink=flows.extend)
    [listen] = await server.start()
    try:
        yield Lab(server, listen, ca, certs, flows)
    finally:
        await server.close()
        await backend.close()


def run(test: Callable[[Lab], Coroutine[Any, Any, None]], loop: str = "asyncio") -> None:
    async def main() -> None:
        async with lab() as the_lab:
            await asyncio.wait_for(test(the_lab), 20)

    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


# --- end to end --------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sni_selects_exact_wildcard_and_default_listener_certificates(loop: str) -> None:
    async def body(lab: Lab) -> None:
        status, _, reply, names = await lab.get("web.example", "web.example")
        assert (status, names) == (200, {"web.example"})
        assert reply == b"proto=https"
        status, _, _, names = await lab.get("a.b.wild.example", "a.b.wild.example")
        assert (status, names) == (200, {"*.wild.example"})
        status, _, _, names = await lab.get("other.example", "other.example")
        assert (status, names) == (200, {"fallback.example"})
        status, _, _, names = await lab.get(None, "whatever.example")  # no SNI at all
        assert (status, names) == (200, {"fallback.example"})
        assert lab.server.tls.metrics.handshakes == 4

    run(body, loop)


def test_host_of_another_listener_than_sni_gets_421() -> None:
    async def body(lab: Lab) -> None:
        status, _, _, names = await lab.get("web.example", "x.wild.example")
        assert (status, names) == (421, {"web.example"})
        status, _, _, _ = await lab.get(None, "web.example")  # default listener's cert
        assert status == 421
        status, _, _, _ = await lab.get("a.wild.example", "b.wild.example:443")  # same one
        assert status == 200
        await asyncio.sleep(0.3)  # flows are batched
        misdirected = [f for f in lab.flows if f.l7 and f.l7.http and f.l7.http.code == 421]
        assert len(misdirected) == 2
        assert all(f.drop_reason_desc == "MISDIRECTED_REQUEST" for f in misdirected)
        assert misdirected[0].l7 and misdirected[0].l7.http
        assert misdirected[0].l7.http.url == "https://x.wild.example/"

    run(body)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_bad_key_refuses_the_handshake_with_a_recorded_reason(loop: str) -> None:
    async def body(lab: Lab) -> None:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await lab.get("broken.example", "broken.example")
        refused = [f for f in lab.flows if f.drop_reason_desc == "TLS_INVALID_CERTIFICATE"]
        assert len(refused) == 1
        flow = refused[0]
        assert flow.verdict is Verdict.DROPPED
        assert "listener broken" in flow.summary and "Secret infra/broken" in flow.summary
        assert "tls.key" in flow.summary and "broken.example" in flow.summary
        assert lab.server.tls.metrics.refused == {"TLS_INVALID_CERTIFICATE": 1}
        assert lab.server.tls.metrics.certificate_errors == 1
        text = _exposition(lab.server)
        assert (
            'tulle_waypoint_tls_handshakes_refused_total{reason="TLS_INVALID_CERTIFICATE"} 1.0'
            in text
        )
        # the other listeners keep working
        status, _, _, names = await lab.get("web.example", "web.example")
        assert (status, names) == (200, {"web.example"})

    run(body, loop)


def test_plain_http_and_garbage_on_the_https_port_fail_the_handshake() -> None:
    async def body(lab: Lab) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: web.example\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, nothing in clear
        writer.close()
        assert lab.server.tls.metrics.refused == {"TLS_HANDSHAKE_FAILED": 1}

    run(body)


def test_certificates_swap_on_update_and_unchanged_contexts_are_kept() -> None:
    async def body(lab: Lab) -> None:
        before = {e.listener: e.context for e in _listeners(lab.server.tls.ports[PARENT])}
        renewed = lab.ca.issue("web.example", "renewed.web.example")
        certificates = dict(lab.server.config.certificates)
        certificates[("infra", "web")] = (renewed.crt, renewed.key)
        lab.server.update(certificates=certificates)
        after = {e.listener: e.context for e in _listeners(lab.server.tls.ports[PARENT])}
        assert after["wild"] is before["wild"] and after["default"] is before["default"]
        assert after["exact"] is not before["exact"]
        _, _, _, names = await lab.get("web.example", "web.example")
        assert names == {"web.example", "renewed.web.example"}

    run(body)


def test_x_forwarded_proto_stays_http_on_plain_listeners() -> None:
    async def body() -> None:
        backend = RawBackend(answer)
        port = await backend.start()
        text = GATEWAY_PREAMBLE + (
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            "metadata: {name: r, namespace: default}\n"
            "spec: {parentRefs: [{name: gw, namespace: infra}], "
            "rules: [{backendRefs: [{name: app, port: 8080}]}]}\n"
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: app, namespace: default}\n"
            "spec: {ports: [{port: 8080}]}\n"
            "---\napiVersion: tulle.io/v1alpha1\nkind: WaypointConfig\n"
            "listeners: [{address: '127.0.0.1:0', parent: "
            "{kind: Gateway, namespace: infra, name: gw, port: 80}}]\n"
            f"endpoints: {{default/app:8080: ['127.0.0.1:{port}']}}\n"
        )
        server = WaypointServer(waypoint_config(load_config_text(text)))
        [listen] = await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listen)
            writer.write(b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Forwarded-Proto: https\r\n\r\n")
            status, _, reply = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
            assert (status, reply) == (200, b"proto=http")  # the client's claim is replaced
            assert server.tls.ports == {}
        finally:
            await server.close()
            await backend.close()

    asyncio.run(body())


# --- pure parts --------------------------------------------------------------------------


def _listeners(port: TlsPort) -> list[ListenerCertificate]:
    return [*port.exact.values(), *port.wild.values(), *([port.any] if port.any else [])]


def _exposition(server: WaypointServer) -> str:
    from prometheus_client import generate_latest

    return generate_latest(server.metrics.registry).decode()


@pytest.mark.parametrize(
    ("server_name", "listener"),
    [
        ("web.example", "exact"),
        ("WEB.example.", "exact"),
        ("a.wild.example", "wild"),
        ("a.b.wild.example", "wild"),
        ("wild.example", "default"),
        ("elsewhere.example", "default"),
        (None, "default"),
        ("", "default"),
    ],
)
def test_port_selects_the_most_specific_listener(server_name: str | None, listener: str) -> None:
    port = TlsPort(
        PARENT,
        [
            ListenerCertificate("exact", "web.example", None, "x"),
            ListenerCertificate("wild", "*.wild.example", None, "x"),
            ListenerCertificate("default", None, None, "x"),
        ],
    )
    choice = port.select(server_name)
    assert choice is not None and choice.listener == listener


def test_port_without_default_listener_selects_nothing_for_unknown_names() -> None:
    port = TlsPort(PARENT, [ListenerCertificate("exact", "web.example", None, "x")])
    assert port.select("other.example") is None
    assert port.select(None) is None


def test_certificate_problems_name_the_secret_and_the_field() -> None:
    ca = CertificateAuthority()
    good = ca.issue("web.example")
    assert certificate_problem(good.crt, good.key) is None
    assert "tls.crt" in (certificate_problem(b"not a certificate", good.key) or "")
    assert "tls.key" in (certificate_problem(good.crt, other_key()) or "")
    assert "tls.key" in (certificate_problem(good.crt, b"garbage") or "")
    with pytest.raises(CertificateError, match="Secret ns/bad: tls.key"):
        certificate_context([(("ns", "bad"), (good.crt, b"garbage"))])


def test_gateway_status_names_a_certificate_that_cannot_serve() -> None:
    """ResolvedRefs is False (InvalidCertificateRef) for a kubernetes.io/tls Secret whose
    content the waypoint could not serve, and the listener is not Programmed."""
    ca = CertificateAuthority()
    good = ca.issue("web.example")
    listener = {"name": "https", "port": 443, "protocol": "HTTPS",
                "tls": {"certificateRefs": [{"name": "cert"}]}}
    gw = from_dict({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "gw", "namespace": "web"},
                    "spec": {"gatewayClassName": "tulle", "listeners": [listener]}})
    cls = from_dict({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                     "metadata": {"name": "tulle"},
                     "spec": {"controllerName": CONTROLLER_NAME}})

    def conditions(crt: bytes, key: bytes) -> dict[str, tuple[str, str, str]]:
        secret = from_dict({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                            "metadata": {"name": "cert", "namespace": "web"},
                            "data": {"tls.crt": base64.b64encode(crt).decode(),
                                     "tls.key": base64.b64encode(key).decode()}})
        inputs = RoutingInputs.of(gateways=[gw], gateway_classes=[cls], secrets=[secret])
        status = compute_status(inputs, certificate_check=certificate_problem)
        listener_status = status.gateways["web/gw"]["listeners"][0]
        return {c["type"]: (c["status"], c["reason"], c["message"])
                for c in listener_status["conditions"]}

    ok = conditions(good.crt, good.key)
    assert ok["ResolvedRefs"][:2] == ("True", "ResolvedRefs") and ok["Programmed"][0] == "True"
    for crt, key, field_ in ((b"not a certificate", good.key, "tls.crt"),
                             (good.crt, other_key(), "tls.key"),
                             (good.crt, b"garbage", "tls.key")):
        bad = conditions(crt, key)
        assert bad["ResolvedRefs"][:2] == ("False", "InvalidCertificateRef")
        assert f"Secret web/cert: {field_}" in bad["ResolvedRefs"][2]
        assert bad["Programmed"][0] == "False"


def test_an_encrypted_key_is_a_problem_not_a_prompt() -> None:
    """OpenSSL would ask for a pass phrase (or fail with a bare OSError without a terminal)."""
    good = CertificateAuthority().issue("web.example")
    key = serialization.load_pem_private_key(good.key, password=None)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret"))
    assert b"ENCRYPTED" in encrypted
    assert "tls.key" in (certificate_problem(good.crt, encrypted) or "")
