"""mTLS between the relay and the agents' observer API (TCP 4244), in Hubble's shape.

Each agent serves the observer API on its node address with a server certificate and
requires a client certificate signed by the CA it is given (``--observer-tls-client-ca``);
the relay dials every agent with its client certificate and verifies the agent's
certificate against the CA it is given, for the agent's name:

    <node>.<cluster>.observer.tulle.io        (dots in either part become hyphens)

as Hubble's ``<node>.<cluster>.hubble-grpc.cilium.io``. One DaemonSet mounts one Secret, so
every agent holds the same certificate, for ``*.<cluster>.observer.tulle.io``: the name
proves "an agent of this cluster", and a certificate for another cluster is refused.
The relay's client certificate is refused as a server (clientAuth usage only) and the
agents' as a client (serverAuth only), so one Secret cannot stand in for the other.

Both sides read PEM files (a Secret's ``tls.crt``, ``tls.key``, ``ca.crt``) and pick up
changed files at the next handshake, as Hubble's certloader does: cert-manager or
`tulle certs relay` rotate them without a restart. A file that no longer loads is logged
and the last good set kept.

`diagnose` turns a failed handshake into a sentence (gRPC reports only "handshake
failed"): which certificate, which side refused it, and why.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.files import Stamp
from agent.files import stamp as files_stamp
from identity.certs import load_pem_chain, not_after, not_before

log = logging.getLogger("tulle.observer.tls")

DOMAIN = "observer.tulle.io"
DEFAULT_CLUSTER = "default"


def server_name(node: str, cluster: str = DEFAULT_CLUSTER) -> str:
    """The name the relay verifies on `node`'s agent (one DNS label per part)."""
    if not node:
        raise ValueError("a node name is needed for the agent's TLS name")
    return f"{node.replace('.', '-')}.{(cluster or DEFAULT_CLUSTER).replace('.', '-')}.{DOMAIN}"


def server_wildcard(cluster: str = DEFAULT_CLUSTER) -> str:
    """The name on the agents' shared certificate: matches `server_name` of every node."""
    return f"*.{(cluster or DEFAULT_CLUSTER).replace('.', '-')}.{DOMAIN}"


class TlsConfigError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class TlsFiles:
    """A certificate (chain, leaf first), its key, and the CA that verifies the other side."""

    cert: Path
    key: Path
    ca: Path

    @classmethod
    def of(cls, cert: str | os.PathLike[str], key: str | os.PathLike[str],
           ca: str | os.PathLike[str]) -> TlsFiles:
        return cls(Path(cert), Path(key), Path(ca))

    def stamp(self) -> Stamp:
        """Changes when any file is replaced or rewritten (a Secret volume swaps a symlink)."""
        return files_stamp((self.cert, self.key, self.ca))


@dataclass(frozen=True)
class TlsMaterial:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    leaf: x509.Certificate

    def validity_problem(self, now: datetime.datetime | None = None) -> str | None:
        """'expired on …' or 'not valid before …' for the leaf, else None."""
        now = now or datetime.datetime.now(datetime.UTC)
        if now > not_after(self.leaf):
            return f"expired on {not_after(self.leaf):%Y-%m-%d %H:%M:%S} UTC"
        if now < not_before(self.leaf):
            return f"not valid before {not_before(self.leaf):%Y-%m-%d %H:%M:%S} UTC"
        return None


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TlsConfigError(f"cannot read the {what} {path}: {e.strerror or e}") from None


def describe(cert: x509.Certificate) -> str:
    """'for NAMES, issued by ISSUER, valid until T' (what an operator compares)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = ", ".join(str(n) for n in san.get_values_for_type(x509.DNSName)) or "no DNS name"
    except x509.ExtensionNotFound:
        names = "no DNS name"
    return (f"for {names}, issued by {cert.issuer.rfc4514_string()}, "
            f"valid until {not_after(cert):%Y-%m-%d %H:%M:%S} UTC")


def load(files: TlsFiles, role: str) -> TlsMaterial:
    """Read and check `files`; `role` ("agent" or "relay") names them in errors."""
    cert_pem = _read(files.cert, f"{role} certificate")
    key_pem = _read(files.key, f"{role} key")
    ca_pem = _read(files.ca, f"{role} CA bundle")
    try:
        chain = load_pem_chain(cert_pem)
    except ValueError as e:
        raise TlsConfigError(f"{files.cert}: the {role} certificate file: {e}") from None
    try:
        load_pem_chain(ca_pem)
    except ValueError as e:
        raise TlsConfigError(f"{files.ca}: the {role} CA bundle: {e}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise TlsConfigError(f"{files.key}: not an unencrypted PEM private key ({e})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != chain[0].public_key().public_bytes(der,
                                                                                          public):
        raise TlsConfigError(f"{files.key} is not the key of {files.cert} (the {role} "
                             "certificate and key files are from different pairs)")
    material = TlsMaterial(cert_pem, key_pem, ca_pem, chain[0])
    problem = material.validity_problem()
    if problem:
        # Served anyway: the peer refuses it and says so; a rotation may be seconds away.
        log.error("the %s certificate %s (%s) %s: renew it", role, files.cert,
                  describe(chain[0]), problem)
    return material


def _usage(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


class _Reloading:
    """The last good `TlsMaterial` of some files, re-read when they change."""

    def __init__(self, files: TlsFiles, role: str) -> None:
        self.files, self.role = files, role
        self._lock = threading.Lock()
        self._stamp = files.stamp()
        self.material = load(files, role)  # a bad set at start: TlsConfigError
        self.generation = 0

    def refresh(self) -> bool:
        """True when the files changed and loaded; a set that fails keeps the old one."""
        stamp = self.files.stamp()
        with self._lock:
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                self.material = load(self.files, self.role)
            except TlsConfigError as e:
                log.error("keeping the previous %s certificate: %s", self.role, e)
                return False
            self.generation += 1
            log.info("loaded the new %s certificate %s (%s)", self.role, self.files.cert,
                     describe(self.material.leaf))
            return True


class ServerTls(_Reloading):
    """The agent's side: its certificate, and the CA its clients (the relay) must present."""

    def __init__(self, files: TlsFiles) -> None:
        super().__init__(files, "agent")
        if ExtendedKeyUsageOID.CLIENT_AUTH in _usage(self.material.leaf):
            log.warning("the agent certificate %s also allows client use: a relay could "
                        "not be told apart from an agent", files.cert)

    def _config(self) -> grpc.ServerCertificateConfiguration:
        m = self.material
        return grpc.ssl_server_certificate_configuration([(m.key_pem, m.cert_pem)],
                                                         root_certificates=m.ca_pem)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        return self._config() if self.refresh() else None  # None: keep the current one

    def credentials(self) -> grpc.ServerCredentials:
        """Per handshake: the files' current pair; a client certificate is required."""
        return grpc.dynamic_ssl_server_credentials(self._config(), self._fetch,
                                                   require_client_authentication=True)


class ClientTls(_Reloading):
    """The relay's side: its client certificate, and the CA that signed the agents'."""

    def __init__(self, files: TlsFiles, cluster: str = DEFAULT_CLUSTER) -> None:
        super().__init__(files, "relay")
        self.cluster = cluster or DEFAULT_CLUSTER

    def channel(self, address: str, node: str) -> grpc.Channel:
        """A channel to `node`'s agent at `address` ("host:port"), verifying its name."""
        m = self.material
        creds = grpc.ssl_channel_credentials(m.ca_pem, m.key_pem, m.cert_pem)
        return grpc.secure_channel(
            address, creds,
            options=[("grpc.ssl_target_name_override", server_name(node, self.cluster))],
        )

    def diagnose(self, address: str, node: str, timeout: float) -> str | None:
        """Why a TLS connection to `node`'s agent at `address` fails, or None (it succeeds,
        or fails before TLS: then gRPC's own reason stands)."""
        return diagnose(address, server_name(node, self.cluster), self.files, self.material,
                        timeout)


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5)  # + SETTINGS


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _peer_leaf(address: str, timeout: float) -> x509.Certificate | None:
    """The agent's certificate, unverified (only to say what is wrong with it)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(_split(address), timeout=timeout) as raw, \
                ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None
    return x509.load_der_x509_certificate(der) if der else None


def diagnose(address: str, name: str, files: TlsFiles, material: TlsMaterial,
             timeout: float) -> str | None:
    """Handshake with the agent as gRPC would (same CA, client pair and name) and explain a
    refusal by either side."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=material.ca_pem.decode())
    ctx.load_cert_chain(files.cert, files.key)
    ctx.set_alpn_protocols(["h2"])
    try:
        host_port = _split(address)
    except ValueError:
        return None
    try:
        with socket.create_connection(host_port, timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=name) as tls:
            # TLS 1.3: the server judges the client's certificate after the client's
            # handshake is done; a refusal arrives as an alert or a bare close on the first
            # read, an acceptance as the server's HTTP/2 SETTINGS.
            try:
                tls.sendall(_H2_PREFACE)
                accepted = tls.recv(1) != b""
                refusal = "" if accepted else "it closed the connection after the handshake"
            except ssl.SSLError as e:
                refusal = (e.reason or str(e)).lower().replace("_", " ")
            except ConnectionError as e:
                refusal = e.strerror or type(e).__name__
    except ssl.SSLCertVerificationError as e:
        leaf = _peer_leaf(address, timeout)
        seen = f" Its certificate is {describe(leaf)}." if leaf is not None else ""
        return (f"TLS: the relay refused the agent's certificate: {e.verify_message} "
                f"(expected the name {name}, signed by the CA in {files.ca}).{seen}")
    except ssl.SSLError as e:
        return f"TLS handshake failed: {e.reason or e}"
    except (OSError, ValueError):
        return None
    if not refusal:
        return None
    own = material.validity_problem()
    why = f"; the relay's certificate {own}" if own else ""
    return (f"TLS: the agent refused the relay's client certificate ({refusal}{why}): it must "
            f"be valid, for client use, and signed by the CA the agents trust "
            f"(--observer-tls-client-ca); the relay's is {describe(material.leaf)}")
