"""The identity service's state in a process: the CA from the Secret, the bundle in the
ConfigMap, and the serving certificate, refreshed every few seconds so a root the user
replaced in the Secret takes over without a restart (new SVIDs and a new serving
certificate at once, the old root kept in the bundle for the overlap: controlplane.roots).

The gRPC server's TLS credentials are dynamic (grpc.dynamic_ssl_server_credentials): each
new handshake asks `serving_config`, which hands out the current serving certificate once
it changed (a new signer, or half its life gone).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.roots import NAMESPACE, Objects, fingerprint, load_ca, publish_bundle
from identity.bundle import TrustBundle, renew_at
from identity.ca import DEFAULT_LIFETIME, DEFAULT_SERVING_LIFETIME, CertificateAuthority
from identity.certs import to_pem
from identity.spiffe import DEFAULT_TRUST_DOMAIN
from identity.system import CONTROLPLANE_SERVICE, ca_service_name

log = logging.getLogger(__name__)
SERVICE_NAME = CONTROLPLANE_SERVICE
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def serving_names(namespace: str) -> list[str]:
    """The Service's DNS names a client may dial (the first is the one agents use)."""
    return [ca_service_name(namespace), f"{ca_service_name(namespace)}.cluster.local"]


@dataclass(frozen=True)
class Settings:
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    namespace: str = NAMESPACE
    max_lifetime: timedelta = DEFAULT_LIFETIME
    root_overlap: timedelta | None = None  # None: max_lifetime + 1 h
    serving_ips: tuple[IP, ...] = ()
    serving_lifetime: timedelta = DEFAULT_SERVING_LIFETIME

    @property
    def overlap(self) -> timedelta:
        return (
            self.root_overlap
            if self.root_overlap is not None
            else (self.max_lifetime + timedelta(hours=1))
        )


@dataclass
class Serving:
    key_pem: bytes
    chain_pem: bytes
    renew_at: datetime
    signer: str  # the signer's fingerprint


@dataclass
class IdentityState:
    """The CA, bundle and serving certificate; `refresh` re-reads the Secret and republishes
    the ConfigMap. Reads are safe from any thread."""

    api: Objects
    settings: Settings
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    on_signer_change: Callable[[CertificateAuthority], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _ca: CertificateAuthority | None = None
    _bundle: TrustBundle | None = None
    _serving: Serving | None = None
    _handed_out: Serving | None = None

    @property
    def ca(self) -> CertificateAuthority:
        with self._lock:
            assert self._ca is not None, "refresh() first"
            return self._ca

    def bundle(self) -> TrustBundle:
        with self._lock:
            assert self._bundle is not None, "refresh() first"
            return self._bundle

    def refresh(self) -> bool:
        """Re-read the CA, republish the bundle, renew the serving certificate if due.
        True when the signer changed (a first load counts)."""
        now = self.clock()
        ca = load_ca(self.api, now, self.settings.namespace)
        bundle = publish_bundle(
            self.api,
            self.settings.trust_domain,
            ca.root,
            now,
            self.settings.overlap,
            self.settings.namespace,
        )
        signer = fingerprint(ca.cert)
        with self._lock:
            changed = self._ca is None or fingerprint(self._ca.cert) != signer
            self._ca, self._bundle = ca, bundle
            due = self._serving is None or changed or now >= self._serving.renew_at
        if changed:
            log.info(
                "signing under %s (root %s); the bundle holds %d root(s)",
                ca.cert.subject.rfc4514_string(),
                fingerprint(ca.root)[:16],
                len(bundle.roots),
            )
            if self.on_signer_change is not None:
                self.on_signer_change(ca)
        if due:
            self._new_serving(ca, now, signer)
        return changed

    def _new_serving(self, ca: CertificateAuthority, now: datetime, signer: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        chain = ca.issue_serving(
            key.public_key(),
            serving_names(self.settings.namespace),
            self.settings.serving_ips,
            now,
            self.settings.serving_lifetime,
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        serving = Serving(key_pem, to_pem(chain), renew_at(chain[0]), signer)
        with self._lock:
            self._serving = serving

    def _current_serving(self) -> Serving:
        with self._lock:
            assert self._serving is not None, "refresh() first"
            return self._serving

    def serving_config(self) -> grpc.ServerCertificateConfiguration | None:
        """For the TLS stack, per handshake: the serving certificate if it changed since it
        last asked, else None (keep the current one)."""
        serving = self._current_serving()
        if serving is self._handed_out:
            return None
        self._handed_out = serving
        return grpc.ssl_server_certificate_configuration([(serving.key_pem, serving.chain_pem)])

    def credentials(self) -> grpc.ServerCredentials:
        serving = self._current_serving()
        self._handed_out = serving
        initial = grpc.ssl_server_certificate_configuration([(serving.key_pem, serving.chain_pem)])
        return grpc.dynamic_ssl_server_credentials(initial, self.serving_config)


def parse_ips(values: Sequence[str]) -> tuple[IP, ...]:
    return tuple(ipaddress.ip_address(v) for v in values)
