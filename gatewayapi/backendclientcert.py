"""The Gateway's client certificate toward backends (GEP-3155, Gateway
``spec.tls.backend.clientCertificateRef``; feature GatewayBackendClientCertificate). Pure:
which Secret each Gateway presents when the waypoint opens TLS to a backend (a
BackendTLSPolicy's; ``l7proxy/backendtls.py`` loads it), and the Gateway's ``ResolvedRefs``
condition.

- The reference resolves when it names a core Secret (else ``InvalidClientCertificateRef``),
  of the Gateway's namespace or of one whose ReferenceGrant allows Gateways from the
  Gateway's namespace to use it (else ``RefNotPermitted``, which the spec puts before any
  other reason), that exists, is of type ``kubernetes.io/tls`` with ``tls.crt`` and
  ``tls.key`` (Core), and whose certificate and key load together (else
  ``InvalidClientCertificateRef``, with the reason in the message).
- A reference that does not resolve presents no certificate: the spec leaves the
  connection to the backend, and a backend that requires one refuses the handshake (the
  request then fails as any BackendTLSPolicy connection that fails: 503). A Secret that
  changes is presented from the next new connection on (the pool keys connections by it).
- The Gateway's ``ResolvedRefs`` condition is written only for a Gateway that sets
  ``spec.tls.backend``: True (``ResolvedRefs``), else False with the reason above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from agent.model.core import Secret
from agent.model.gateway import GATEWAY_GROUP, Gateway, SecretObjectReference
from gatewayapi.backends import Grants

INVALID_REF = "InvalidClientCertificateRef"
NOT_PERMITTED = "RefNotPermitted"
TLS_SECRET = "kubernetes.io/tls"
SecretKey = tuple[str, str]
CertificateCheck = Callable[[bytes, bytes], str | None]
"""Why a certificate and key cannot be used, or None (``l7proxy.tlscerts.certificate_problem``:
this package parses no PEM itself)."""


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What a Gateway presents to TLS backends: the Secret's PEM certificate chain and key.
    Hashable by content, so a rotated Secret is a different key for pools and contexts."""

    gateway: str
    """"namespace/name" of the Gateway, for flows and logs."""
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True, slots=True)
class Resolution:
    """A Gateway's reference: the certificate, or the problem (reason, message)."""

    certificate: ClientCertificate | None
    problem: tuple[str, str] | None = None


def client_certificate_ref(gateway: Gateway) -> SecretObjectReference | None:
    tls = gateway.spec.tls
    backend = tls.backend if tls is not None else None
    return backend.client_certificate_ref if backend is not None else None


def resolve(
    gateway: Gateway,
    secrets: Mapping[SecretKey, Secret],
    grants: Grants,
    check: CertificateCheck | None = None,
) -> Resolution | None:
    """The Gateway's client certificate toward backends; None when it names none."""
    ref = client_certificate_ref(gateway)
    if ref is None:
        return None
    gw_ns = gateway.metadata.namespace
    ns = ref.namespace or gw_ns
    where = f"clientCertificateRef {ref.kind} {ns}/{ref.name}"
    if ref.group not in ("", "core") or ref.kind != "Secret":
        shown = f"{ref.group}/{ref.kind}" if ref.group else ref.kind
        return _refused(INVALID_REF, f"clientCertificateRef: unsupported kind {shown} "
                                     "(a core Secret only)")
    if not grants.allows(GATEWAY_GROUP, "Gateway", gw_ns, "", "Secret", ns, ref.name):
        return _refused(NOT_PERMITTED, f"{where}: no ReferenceGrant in {ns} allows Gateways "
                                       f"from {gw_ns} to use it")
    secret = secrets.get((ns, ref.name))
    if secret is None:
        return _refused(INVALID_REF, f"{where} not found")
    crt, key = secret.data.get("tls.crt"), secret.data.get("tls.key")
    if secret.type != TLS_SECRET or not crt or not key:
        return _refused(INVALID_REF, f"{where} must be of type {TLS_SECRET} with tls.crt "
                                     "and tls.key")
    if check is not None and (why := check(crt, key)) is not None:
        return _refused(INVALID_REF, f"{where}: {why}")
    return Resolution(ClientCertificate(f"{gw_ns}/{gateway.metadata.name}", crt, key))


def _refused(reason: str, message: str) -> Resolution:
    return Resolution(None, (reason, message))


def client_certificates(
    gateways: Iterable[Gateway],
    secrets: Iterable[Secret],
    grants: Grants,
    check: CertificateCheck | None = None,
) -> dict[SecretKey, ClientCertificate]:
    """What the waypoint presents, by Gateway (namespace, name): only references that
    resolve (the others present nothing)."""
    by_key = {(s.metadata.namespace, s.metadata.name): s for s in secrets}
    out: dict[SecretKey, ClientCertificate] = {}
    for gateway in gateways:
        found = resolve(gateway, by_key, grants, check)
        if found is not None and found.certificate is not None:
            out[(gateway.metadata.namespace, gateway.metadata.name)] = found.certificate
    return out


def resolved_refs(resolution: Resolution | None) -> tuple[bool, str, str] | None:
    """The Gateway's ``ResolvedRefs`` (status, reason, message); None: not written."""
    if resolution is None:
        return None
    if resolution.problem is not None:
        return (False, *resolution.problem)
    return (True, "ResolvedRefs", "clientCertificateRef resolved")
