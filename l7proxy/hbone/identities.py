"""TLS contexts for HBONE from the node-local SVID directory (``agent.svid.store``).

Every context is TLS 1.3 only, offers and accepts only ALPN ``h2``, requires the peer's
certificate and verifies it against the bundle's roots; hostname checks are off, because an
SVID names a SPIFFE ID, not a host: after OpenSSL accepts a chain, `peer_identity` checks it
again under the SPIFFE rules (one URI SAN, the trust domain: ``identity.bundle.verify_svid``).

A client context per identity held (the sending waypoint presents the *client pod's* SVID),
and a server context per identity held: the client names the identity it expects, the
destination pod's, in SNI (`sni_name`: a hash, since a SPIFFE ID is no host name) and the
server's `sni_callback` switches to that identity's context, as Istio's ztunnel presents its
destination workload's identity. A name the server holds no SVID for, and a client that
sends no SNI, get the first identity held in (namespace, ServiceAccount) order; the client
then refuses it unless it is the one it expected (`pool.py`). `presented` tells the
receiving end which identity a connection was opened for, and so which pods its streams
may reach.

`SvidDirectory.refresh` rebuilds everything when any file's (inode, size, mtime) changed.
Contexts are taken per new connection, so a rotation reaches new connections at once while
open ones keep the certificate they shook hands with. OpenSSL loads a key only from a file:
it is handed one through a memfd, so no copy of a private key is written anywhere.
"""

from __future__ import annotations

import _ssl
import hashlib
import logging
import os
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from agent.files import Stamp
from agent.files import stamp as files_stamp
from agent.svid.store import BUNDLE_FILE, SVID_DIR, SvidFile, read_bundle, read_svids
from identity.bundle import BundleError, SvidError, TrustBundle, parse_chain, verify_svid
from identity.certs import load_pem_chain, not_after
from identity.hbone import ALPN_H2
from identity.spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId, workload_id

log = logging.getLogger("tulle.waypoint.hbone")
SNI_SUFFIX = ".id.hbone.tulle"


def sni_name(spiffe_id: str) -> str:
    """The SNI a client sends to ask for ``spiffe_id``'s certificate: 32 hex digits (128 bits)
    of its SHA-256 under a reserved suffix. A SPIFFE ID has ``/`` and ``:``, and may pass a
    DNS label's 63 octets, so it cannot be the name itself; the hash leaks no more than the
    certificate the server answers with (TLS 1.3 encrypts that, but not SNI)."""
    return hashlib.sha256(spiffe_id.encode()).hexdigest()[:32] + SNI_SUFFIX


def make_context(server_side: bool, svid: SvidFile, bundle_pem: bytes) -> ssl.SSLContext:
    """A TLS 1.3, ALPN h2, mutual-TLS context presenting ``svid`` and trusting the bundle."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols([ALPN_H2])
    fd = os.memfd_create("tulle-svid", os.MFD_CLOEXEC)
    try:
        os.write(fd, svid.chain_pem + svid.key_pem)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    ctx.load_verify_locations(cadata=bundle_pem.decode("ascii"))
    return ctx


@dataclass(frozen=True)
class Held:
    """One identity this node holds: its leaf, and a client and a server context presenting
    it."""

    spiffe_id: str
    serial: int
    not_after: datetime
    client: ssl.SSLContext = field(repr=False)
    server: ssl.SSLContext = field(repr=False)


@dataclass(frozen=True)
class Credentials:
    """Everything loaded from one reading of the directory."""

    bundle: TrustBundle
    held: dict[str, Held]  # by SPIFFE ID
    # The listener's context: presents ``server_id`` to a client without SNI and switches
    # to the asked identity's context on SNI (`select`). None: no identity held.
    server: ssl.SSLContext | None = field(repr=False)
    server_id: str = ""
    by_sni: dict[str, str] = field(default_factory=dict)  # sni_name(id) -> id

    def client_context(self, spiffe_id: str) -> ssl.SSLContext | None:
        held = self.held.get(spiffe_id)
        return held.client if held is not None else None

    def select(self, ssl_object: ssl.SSLObject, name: str | None, _: object) -> None:
        """OpenSSL's SNI callback: present the identity ``name`` asks for, or (a name of
        none held) the default one, but through its own context either way, so that
        `presented` knows the client asked for a certificate."""
        if name is None or not self.server_id:
            return
        ssl_object.context = self.held[self.by_sni.get(name, self.server_id)].server

    def presented(self, ssl_object: ssl.SSLObject) -> str:
        """The identity a server-side connection was opened for: the one it presented when
        the client asked by SNI, "" when the client sent none (any local pod then)."""
        if ssl_object.context is self.server:
            return ""
        return next((h.spiffe_id for h in self.held.values() if h.server is ssl_object.context), "")


def load(directory: Path, trust_domain: str) -> Credentials | None:
    """The directory's credentials; None while it holds no bundle. An SVID that does not
    load (a key that does not match, a chain outside the trust domain) is logged and left
    out: one bad file must not take down the others."""
    bundle_pem = read_bundle(directory)
    if bundle_pem is None:
        return None
    bundle = TrustBundle.from_pem(trust_domain, bundle_pem)
    held: dict[str, Held] = {}
    server: ssl.SSLContext | None = None
    server_id = ""
    for (namespace, sa), svid in sorted(read_svids(directory).items()):
        spiffe_id = str(workload_id(trust_domain, namespace, sa))
        try:
            leaf = load_pem_chain(svid.chain_pem)[0]
            client = make_context(False, svid, bundle_pem)
            own_server = make_context(True, svid, bundle_pem)
            if server is None:
                server, server_id = make_context(True, svid, bundle_pem), spiffe_id
        except (ValueError, ssl.SSLError) as exc:
            log.warning("SVID %s/%s not loaded: %s", namespace, sa, exc)
            continue
        held[spiffe_id] = Held(spiffe_id, leaf.serial_number, not_after(leaf), client, own_server)
    creds = Credentials(
        bundle, held, server, server_id, {sni_name(spiffe_id): spiffe_id for spiffe_id in held}
    )
    if server is not None:
        server.sni_callback = creds.select
    return creds


class SvidDirectory:
    """The current credentials of one SVID directory, reloaded by `refresh` on change."""

    def __init__(self, directory: Path, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> None:
        self.directory = directory
        self.trust_domain = trust_domain
        self.current: Credentials | None = None
        self._stamp: Stamp = ()
        self.reloads = 0
        self.refresh()

    def _stamp_now(self) -> Stamp:
        paths = [self.directory / BUNDLE_FILE]
        try:
            paths += sorted((self.directory / SVID_DIR).iterdir())
        except FileNotFoundError:
            pass
        return files_stamp(paths)

    def refresh(self) -> bool:
        """Reload when a file changed; True if it did. A bundle that does not parse keeps
        the last good credentials (logged): refusing every tunnel would be worse."""
        stamp = self._stamp_now()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.current = load(self.directory, self.trust_domain)
        except BundleError as exc:
            log.error("trust bundle in %s not loaded: %s", self.directory, exc)
            return False
        self.reloads += 1
        return True


def peer_chain(ssl_object: ssl.SSLObject) -> list[x509.Certificate]:
    """The peer's verified chain, leaf first. Python 3.11 has it only on the private
    ``_sslobj`` (public as ``get_verified_chain`` from 3.13); without it, the leaf alone."""
    inner = getattr(ssl_object, "_sslobj", None)
    getter = getattr(inner, "get_verified_chain", None) or getattr(
        ssl_object, "get_verified_chain", None
    )
    if getter is not None:
        ders = [cert.public_bytes(_ssl.ENCODING_DER) for cert in getter()]
    else:
        leaf = ssl_object.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    return parse_chain(ders)


def peer_identity(
    ssl_object: ssl.SSLObject, bundle: TrustBundle, now: datetime | None = None
) -> tuple[SpiffeId, int]:
    """The peer's SPIFFE ID under the SPIFFE rules, and its leaf's serial; ``SvidError`` if
    it is not an SVID."""
    chain = peer_chain(ssl_object)
    return verify_svid(chain, bundle, now or datetime.now(UTC)), chain[0].serial_number


__all__ = [
    "Credentials",
    "Held",
    "SvidDirectory",
    "SvidError",
    "make_context",
    "peer_identity",
    "sni_name",
]
