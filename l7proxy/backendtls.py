"""TLS from the waypoint to a backend, as a BackendTLSPolicy asks (gateway.networking.k8s.io/v1,
GEP-1897): the policy's ``validation`` as a client ``ssl.SSLContext`` and the checks of the
backend's certificate, with the reason a connection is refused.

- ``hostname`` is the SNI, always (RFC 6066). Without ``subjectAltNames`` it also
  authenticates: the certificate must be valid for it. With them it MUST NOT authenticate:
  the certificate must carry one of the listed SANs (``Hostname``: a DNS name, a wildcard
  in the certificate covering one label; ``URI``: exact, as a SPIFFE ID).
- The chain is verified against the CA bundle of the policy's ConfigMaps (``ca.crt``) or,
  with ``wellKnownCACertificates: System``, the system's trust store; an expired or not yet
  valid certificate fails either way.
- A backend that does not speak TLS, or fails any check, fails the connection with
  ``BackendTLSError`` (the reason; drop reason ``UPSTREAM_TLS_FAILED``), which the proxy
  answers with 503.
- A Gateway's ``spec.tls.backend.clientCertificateRef`` (GEP-3155) is presented as the
  client certificate on the connections of its routes (``presenting``); mesh requests and
  Gateways without one present none.

The ``Connector`` (``l7proxy/upstream.py``) opens a covered Service port's connections
through ``open_checked`` with the port's ``gatewayapi.backendtls.UpstreamTLS``. HTTP/1.1
only: ALPN h2 to backends is not written yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from gatewayapi.backendclientcert import ClientCertificate
from gatewayapi.backendtls import UpstreamTLS
from l7proxy.tlscerts import memory_file

P = TypeVar("P", bound=asyncio.BaseProtocol)
Address = tuple[str, int]

TLS_DROP = "UPSTREAM_TLS_FAILED"
"""The flow's drop reason when the TLS connection to a backend fails."""


class SanType(StrEnum):
    HOSTNAME = "Hostname"
    URI = "URI"


@dataclass(frozen=True, slots=True)
class SubjectAltName:
    type: SanType
    value: str


@dataclass(frozen=True, slots=True)
class BackendTLS:
    """One Service port's TLS validation. ``ca_pem`` None: the system's trust store."""

    hostname: str
    ca_pem: bytes | None
    subject_alt_names: tuple[SubjectAltName, ...] = ()
    client_cert: tuple[bytes, bytes] | None = None
    """PEM certificate chain and key presented to the backend (a Gateway's, GEP-3155)."""


class BackendTLSError(Exception):
    """The TLS connection to a backend failed; ``str()`` is the flow's reason."""

    drop = TLS_DROP


def client_context(tls: BackendTLS) -> ssl.SSLContext:
    """A client context for ``tls``: TLS 1.2 or later, the chain always verified, the
    hostname checked by OpenSSL only when no subjectAltNames are listed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = not tls.subject_alt_names
    context.verify_mode = ssl.CERT_REQUIRED
    if tls.ca_pem is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        try:
            context.load_verify_locations(cadata=tls.ca_pem.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
            raise BackendTLSError(f"CA bundle unusable: {exc}") from None
    if tls.client_cert is not None:
        crt, key = tls.client_cert
        try:
            with memory_file(crt) as crt_path, memory_file(key) as key_path:
                context.load_cert_chain(crt_path, key_path, password=b"")
        except (ssl.SSLError, ValueError, OSError) as exc:
            # gatewayapi.backendclientcert drops such a Secret first; fail closed if not
            raise BackendTLSError(f"client certificate unusable: {exc}") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def dns_matches(presented: str, wanted: str) -> bool:
    """A certificate's DNS name against a wanted one: equal without case, or the
    certificate's ``*.`` covers exactly the wanted name's first label (RFC 6125 6.4.3)."""
    presented, wanted = presented.lower().rstrip("."), wanted.lower().rstrip(".")
    if presented == wanted:
        return True
    if not presented.startswith("*.") or wanted.startswith("*."):
        return False
    first, dot, rest = wanted.partition(".")
    return bool(first and dot and rest == presented[2:] and rest.count(".") >= 1)


def san_problem(certificate: dict[str, object], wanted: tuple[SubjectAltName, ...]) -> str | None:
    """None when the certificate (``SSLSocket.getpeercert()``) carries one of ``wanted``;
    else why not. ``wanted`` empty: nothing to check here (the hostname was)."""
    if not wanted:
        return None
    raw = certificate.get("subjectAltName") or ()
    presented = [(str(kind), str(value)) for kind, value in raw]  # type: ignore[attr-defined]
    for san in wanted:
        for kind, value in presented:
            if san.type is SanType.HOSTNAME and kind == "DNS" and dns_matches(value, san.value):
                return None
            if san.type is SanType.URI and kind == "URI" and value == san.value:
                return None
    shown = ", ".join(f"{k}:{v}" for k, v in presented) or "none"
    listed = ", ".join(f"{s.type}:{s.value}" for s in wanted)
    return f"certificate SANs ({shown}) match none of the policy's ({listed})"


def verify_problem(exc: BaseException) -> str:
    """The flow's reason for a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed (does the backend speak TLS?): {exc.reason or exc}"
    if isinstance(exc, (ConnectionError, asyncio.IncompleteReadError, EOFError)):
        return "the backend closed the connection during the TLS handshake"
    return f"TLS handshake failed: {exc}"


async def open_tls(
    host: str, port: int, tls: BackendTLS, *, timeout: float = 5.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A verified TLS connection to ``host``:``port`` (BackendTLSError, with the reason,
    when the backend's certificate or its TLS fails a check)."""
    context = client_context(tls)
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=tls.hostname
            )
    except TimeoutError:
        raise BackendTLSError("TLS handshake timed out") from None
    except (ssl.SSLError, ConnectionError, EOFError) as exc:
        raise BackendTLSError(verify_problem(exc)) from None
    certificate = writer.get_extra_info("peercert") or {}
    problem = san_problem(certificate, tls.subject_alt_names)
    if problem is not None:
        writer.close()
        raise BackendTLSError(problem)
    return reader, writer


def from_policy(tls: UpstreamTLS) -> BackendTLS:
    """The checks of a Service port's attached policy (``gatewayapi.backendtls``)."""
    return BackendTLS(
        hostname=tls.hostname,
        ca_pem=tls.ca_pem,
        subject_alt_names=tuple(
            SubjectAltName(SanType(san.type.value), san.hostname or san.uri)
            for san in tls.subject_alt_names
        ),
        client_cert=(
            None if (cert := tls.client_certificate) is None else (cert.cert_pem, cert.key_pem)
        ),
    )


@functools.lru_cache(maxsize=256)
def presenting(tls: UpstreamTLS, certificate: ClientCertificate | None) -> UpstreamTLS:
    """``tls`` with the Gateway's client certificate (GEP-3155): per request, memoized so a
    request pays a lookup, not a new value (and a context is built once per pair)."""
    if tls.client_certificate == certificate:
        return tls
    return dataclasses.replace(tls, client_certificate=certificate)


@functools.lru_cache(maxsize=64)
def _context(tls: UpstreamTLS) -> ssl.SSLContext:
    """One context per policy state, so a CA bundle is parsed once, not per connection."""
    return client_context(from_policy(tls))


async def open_checked(
    address: Address,
    factory: Callable[[], P],
    tls: UpstreamTLS,
    open_tls: Callable[
        [Address, Callable[[], P], ssl.SSLContext, str], Awaitable[tuple[asyncio.BaseTransport, P]]
    ],
) -> tuple[asyncio.BaseTransport, P]:
    """A connection through ``open_tls`` (the ``Connector``'s) checked as ``tls`` asks;
    BackendTLSError with the reason when it fails (a policy without a usable CA always
    does: it must never fall back to plaintext)."""
    if tls.refused:
        raise BackendTLSError(f"BackendTLSPolicy {tls.policy} has no usable CA: {tls.refused}")
    context = _context(tls)
    try:
        transport, protocol = await open_tls(address, factory, context, tls.hostname)
    except (ssl.SSLError, ConnectionError, EOFError) as exc:
        raise BackendTLSError(verify_problem(exc)) from None
    certificate = transport.get_extra_info("peercert") or {}
    problem = san_problem(certificate, from_policy(tls).subject_alt_names)
    if problem is not None:
        transport.close()
        raise BackendTLSError(problem)
    return transport, protocol
