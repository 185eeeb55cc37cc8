"""BackendTLSPolicy's client side (``l7proxy/backendtls.py``) against real TLS backends on
loopback: a backend with a certificate from the policy's CA, valid for the hostname, is
reached; the attacker's cases are refused with a reason: a certificate from another CA,
one for another name, an expired one, a SAN the policy does not list, a backend speaking
plaintext, and a CA bundle that is no PEM."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from l7proxy.backendtls import (
    BackendTLS,
    BackendTLSError,
    SanType,
    SubjectAltName,
    dns_matches,
    open_tls,
    san_problem,
)

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

NOW = datetime.datetime.now(datetime.UTC)


class CA:
    """A throwaway CA (ECDSA P-256) issuing leaves with DNS and URI SANs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "backend test CA")])
        self.cert = (
            self._builder(self.name, self.key.public_key(), NOW + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def _builder(self, subject: Any, public_key: Any, until: datetime.datetime) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=2))
            .not_valid_after(until)
        )

    def issue(self, tmp: Path, *names: str, uris: tuple[str, ...] = (),
              expired: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        until = NOW - datetime.timedelta(days=1) if expired else NOW + datetime.timedelta(days=1)
        sans = [x509.DNSName(n) for n in names] + [x509.UniformResourceIdentifier(u) for u in uris]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or uris)[0][:60])])
        cert = (
            self._builder(subject, key.public_key(), until)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        crt, pem_key = tmp / f"{id(cert)}.crt", tmp / f"{id(cert)}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        return crt, pem_key


async def _serve_tls(crt: Path, key: Path) -> asyncio.Server:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)


async def _serve_plaintext() -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


def _reach(make: Callable[[], Awaitable[asyncio.Server]], tls: BackendTLS) -> bytes:
    """GET / over ``open_tls`` to the backend ``make`` starts: the answer, or the error."""

    async def main() -> bytes:
        server = await make()
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await open_tls("127.0.0.1", port, tls)
            writer.write(b"GET / HTTP/1.1\r\nHost: backend\r\n\r\n")
            data = await reader.read()
            writer.close()
            return data
        finally:
            server.close()

    return asyncio.run(asyncio.wait_for(main(), 20))


HOST = "backend.shop.svc.cluster.local"


def test_a_certificate_from_the_policys_ca_for_the_hostname_is_reached(tmp_path: Path) -> None:
    ca = CA()
    crt, key = ca.issue(tmp_path, HOST)
    got = _reach(lambda: _serve_tls(crt, key), BackendTLS(HOST, ca.pem))
    assert got.endswith(b"ok")


def test_a_wildcard_certificate_covers_the_hostname(tmp_path: Path) -> None:
    ca = CA()
    crt, key = ca.issue(tmp_path, "*.shop.svc.cluster.local")
    assert _reach(lambda: _serve_tls(crt, key), BackendTLS(HOST, ca.pem)).endswith(b"ok")


def test_subject_alt_names_authenticate_instead_of_the_hostname(tmp_path: Path) -> None:
    ca = CA()
    spiffe = "spiffe://cluster.local/ns/shop/sa/backend"
    crt, key = ca.issue(tmp_path, "other.example", uris=(spiffe,))
    tls = BackendTLS(HOST, ca.pem, (SubjectAltName(SanType.URI, spiffe),))
    assert _reach(lambda: _serve_tls(crt, key), tls).endswith(b"ok")
    by_name = BackendTLS(HOST, ca.pem, (SubjectAltName(SanType.HOSTNAME, "other.example"),))
    assert _reach(lambda: _serve_tls(crt, key), by_name).endswith(b"ok")


# --- the attacker's cases ----------------------------------------------------------------


def _refused(make: Callable[[], Awaitable[asyncio.Server]], tls: BackendTLS) -> str:
    with pytest.raises(BackendTLSError) as caught:
        _reach(make, tls)
    assert caught.value.drop == "UPSTREAM_TLS_FAILED"
    return str(caught.value)


def test_a_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    crt, key = CA().issue(tmp_path, HOST)
    # another CA of the same name: found as the issuer, its signature fails
    reason = _refused(lambda: _serve_tls(crt, key), BackendTLS(HOST, CA().pem))
    assert reason.startswith("certificate not trusted: certificate signature failure")


def test_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    ca = CA()
    crt, key = ca.issue(tmp_path, "evil.example")
    reason = _refused(lambda: _serve_tls(crt, key), BackendTLS(HOST, ca.pem))
    assert "not trusted" in reason and "mismatch" in reason.lower()


def test_an_expired_certificate_is_refused(tmp_path: Path) -> None:
    ca = CA()
    crt, key = ca.issue(tmp_path, HOST, expired=True)
    reason = _refused(lambda: _serve_tls(crt, key), BackendTLS(HOST, ca.pem))
    assert "expired" in reason


def test_a_san_the_policy_does_not_list_is_refused_even_for_the_hostname(tmp_path: Path) -> None:
    ca = CA()
    crt, key = ca.issue(tmp_path, HOST, uris=("spiffe://cluster.local/ns/evil/sa/x",))
    wanted = (SubjectAltName(SanType.URI, "spiffe://cluster.local/ns/shop/sa/backend"),)
    reason = _refused(lambda: _serve_tls(crt, key), BackendTLS(HOST, ca.pem, wanted))
    assert "match none" in reason and "spiffe://cluster.local/ns/evil/sa/x" in reason


def test_a_backend_speaking_plaintext_is_refused() -> None:
    reason = _refused(_serve_plaintext, BackendTLS(HOST, CA().pem))
    assert "TLS" in reason


def test_a_ca_bundle_that_is_no_pem_is_refused(tmp_path: Path) -> None:
    ca = CA()
    crt, key = ca.issue(tmp_path, HOST)
    reason = _refused(lambda: _serve_tls(crt, key), BackendTLS(HOST, b"not a certificate"))
    assert "CA bundle unusable" in reason


# --- the pure checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("presented", "wanted", "match"),
    [
        ("a.example", "a.example", True),
        ("A.Example.", "a.example", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("*.com", "example.com", False),  # not a whole public suffix
        ("a.example", "b.example", False),
        ("*.example.com", "*.example.com", True),
    ],
)
def test_dns_matches(presented: str, wanted: str, match: bool) -> None:
    assert dns_matches(presented, wanted) is match


def test_san_problem_with_no_sans_presented() -> None:
    wanted = (SubjectAltName(SanType.HOSTNAME, "a.example"),)
    assert "none" in (san_problem({}, wanted) or "")
    assert san_problem({}, ()) is None
