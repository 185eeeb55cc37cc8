"""Certificates for HTTPS Gateway listeners: a server context per certificate set
(validated when built; keys loaded from memory, never from a file on disk) and, per
Gateway port, the listener SNI selects (exact hostname, then the longest wildcard, then
the listener without hostname). ``certificate_problem`` also feeds Gateway status."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import ssl
from collections.abc import Iterator, Sequence

from gatewayapi import GatewayParent
from gatewayapi.hostnames import wildcard_suffixes
from gatewayapi.types import IngressParent

SecretKey = tuple[str, str]
"""(namespace, name) of a ``kubernetes.io/tls`` Secret."""
CertificatePair = tuple[bytes, bytes]
"""The Secret's ``tls.crt`` and ``tls.key`` (PEM)."""

ALPN = ["h2", "http/1.1"]
"""HTTP/2 first: GRPCRoute on an HTTPS listener needs HTTP/2 by ALPN (GRPCRoute, "MUST
accept HTTP/2 connections without an initial upgrade from HTTP/1.1, i.e. via ALPN");
clients that offer only http/1.1 keep it."""


class CertificateError(ValueError):
    """A certificate set that cannot serve: the message names the Secret and the field."""


def server_context(alpn: Sequence[str] = ALPN) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def verify_clients(context: ssl.SSLContext, client_ca: bytes | None, optional: bool) -> None:
    """Require a client certificate that ``client_ca`` validates (GEP-91 AllowValidOnly).

    ``optional`` (AllowInsecureFallback) asks for none: OpenSSL's CERT_OPTIONAL still fails
    the handshake when a client sends a certificate that does not verify, and ``ssl`` has no
    verify callback to ignore that, while the spec serves such clients too; nothing past the
    handshake reads the client's certificate. Raises CertificateError for an unusable CA."""
    if client_ca is None or optional:
        return
    try:
        context.load_verify_locations(cadata=client_ca.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        raise CertificateError(f"client CA bundle holds no usable PEM certificate ({exc})") from exc
    context.verify_mode = ssl.CERT_REQUIRED


def certificate_context(
    pairs: Sequence[tuple[SecretKey, CertificatePair]],
    *,
    alpn: Sequence[str] = ALPN,
    client_ca: bytes | None = None,
    client_ca_optional: bool = False,
) -> ssl.SSLContext:
    """A server context holding every certificate and key of a listener (one per key type,
    as ``certificateRefs`` allows). Raises CertificateError naming the first bad Secret.
    ``alpn``: what it offers (none for a TLSRoute's Terminate listener, a TCP stream).
    ``client_ca``: the port's client-certificate validation (``verify_clients``)."""
    context = server_context(alpn)
    verify_clients(context, client_ca, client_ca_optional)
    for (ns, name), (crt, key) in pairs:
        where = f"Secret {ns}/{name}"
        try:
            ssl.create_default_context(cadata=crt.decode("ascii"))
        except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
            raise CertificateError(f"{where}: tls.crt holds no valid PEM certificate") from exc
        try:
            with memory_file(crt) as crt_path, memory_file(key) as key_path:
                # An empty password: an encrypted key fails here instead of OpenSSL asking
                # for a pass phrase on the terminal (or failing with a bare OSError).
                context.load_cert_chain(crt_path, key_path, password=b"")
        except (ssl.SSLError, ValueError, OSError) as exc:
            detail = getattr(exc, "reason", None) or str(exc)
            raise CertificateError(
                f"{where}: tls.key is not a valid private key for tls.crt ({detail})"
            ) from exc
    return context


@contextlib.contextmanager
def memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that names no file on any disk: an anonymous memfd (RAM
    only, gone when closed), read through /proc/self/fd. ``ssl`` loads keys only from
    paths, and a key written to /tmp (even briefly, even 0600) can be copied or left
    behind by a crash."""
    fd = os.memfd_create("tulle-tls", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def certificate_problem(crt: bytes, key: bytes) -> str | None:
    """Why a ``kubernetes.io/tls`` Secret's data cannot serve, or None (for status)."""
    try:
        certificate_context([(("", "secret"), (crt, key))])
    except CertificateError as exc:
        return str(exc).partition(": ")[2]
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerCertificate:
    """An HTTPS listener as the handshake sees it: its context, or why it has none."""

    listener: str
    hostname: str | None
    context: ssl.SSLContext | None
    error: str = ""


class TlsPort:
    """The HTTPS listeners of one Gateway on one port, by hostname; or the TLS hosts of an
    IngressClass on 443, whose wildcards cover exactly one label (Ingress semantics)."""

    __slots__ = ("parent", "exact", "wild", "any", "dispatch")

    def __init__(
        self,
        parent: GatewayParent | IngressParent,
        listeners: Sequence[ListenerCertificate],
        dispatch: ssl.SSLContext | None = None,
    ) -> None:
        self.parent = parent
        self.dispatch = dispatch
        """The context a handshake on this port starts with, when the port validates client
        certificates; None: the terminator's. OpenSSL takes the verify mode from the first
        context (switching context on SNI keeps it) and the CA store from the switched-to
        one, so both carry the port's validation."""
        self.exact: dict[str, ListenerCertificate] = {}
        self.wild: dict[str, ListenerCertificate] = {}
        self.any: ListenerCertificate | None = None
        for entry in listeners:
            if entry.hostname is None:
                self.any = entry
            elif entry.hostname.startswith("*."):
                self.wild[entry.hostname[2:].lower()] = entry
            else:
                self.exact[entry.hostname.lower()] = entry

    def select(self, server_name: str | None) -> ListenerCertificate | None:
        """The most specific listener for the SNI name; without one (or no match), the
        listener without hostname."""
        if server_name:
            name = server_name.lower().rstrip(".")
            entry = self.exact.get(name)
            if entry is not None:
                return entry
            for suffix in wildcard_suffixes(name):
                entry = self.wild.get(suffix)
                if entry is not None:
                    return entry
                if isinstance(self.parent, IngressParent):
                    break  # "*.foo.com" matches "bar.foo.com" only
        return self.any


