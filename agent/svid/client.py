"""The agent's side of the certificate service (``tulle.identity.v1.CertificateService``):
a key made on the node, a CSR for one SPIFFE ID, one ``CreateCertificate`` call.

- ``new_request(spiffe_id)``: an EC P-256 key (``cryptography``) and a CSR signed with it
  whose only subjectAltName is the ID's URI (what ``identity.csr.validate_csr`` accepts).
  Only the CSR leaves the node; the key goes to the SVID directory once the chain checks.
- ``CertificateClient.create(csr_pem, lifetime, roots_pem)``: the call, with
  ``authorization: Bearer <token>`` (the token read anew each call: a projected token
  rotates). Over TLS verified against the trust bundle's roots only, for the service's
  name ``tulle-controlplane.<system namespace>.svc`` (``identity.system``) whatever address
  it is reached by (``grpc.ssl_target_name_override``), so the token never goes to anyone
  but the CA.
  Insecure only for a unix socket (``unix:/path``), or when a test asks for it.
  A refusal raises ``CaRefused`` with the gRPC status and the service's reason code (its
  details start with it, controlplane/README.md).
- ``token_source(kubeconfig)``: the bearer token of the agent's kubeconfig user (the lab),
  or the in-cluster projected token file.

The generated message classes are ``agent.svid.gen`` (scripts/gen-proto.sh makes them from
controlplane/proto): the agent's runtime never imports ``controlplane``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.svid.gen import certificate_pb2 as pb
from agent.svid.gen import certificate_pb2_grpc as pb_grpc
from identity.spiffe import SpiffeId
from identity.system import ca_service_name

SERVICE_NAME = ca_service_name()  # the default system namespace's; the CA's serving DNS SAN
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
CALL_TIMEOUT = 10.0  # seconds; a CA that does not answer is retried with back-off


class CaRefused(Exception):
    """The call failed: ``code`` is the gRPC status name (``PERMISSION_DENIED``...),
    ``reason`` the service's reason code (``node-not-authorized``...) or, for a transport
    failure, the status name in lowercase."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class TokenError(ValueError):
    """No bearer token to authenticate with; the message says where it was looked for."""


@dataclass(frozen=True)
class Request:
    key: ec.EllipticCurvePrivateKey
    csr_pem: bytes

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_request(spiffe_id: SpiffeId) -> Request:
    """A fresh P-256 key and a CSR for ``spiffe_id`` (its one URI SAN; an empty subject)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(spiffe_id))]),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Request(key, csr.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class Issued:
    chain_pem: tuple[str, ...]  # leaf first, without the root
    bundle_pem: tuple[str, ...]  # the roots the service trusts now


def token_source(kubeconfig: str | None) -> Callable[[], str]:
    """A function returning the agent's bearer token now: its kubeconfig user's token (or
    tokenFile), else the in-cluster ServiceAccount's projected token. Files are read at
    every call (kubelet rotates projected tokens)."""
    token: str | None = None
    token_file: Path | None = SERVICE_ACCOUNT_TOKEN
    where = str(SERVICE_ACCOUNT_TOKEN)
    if kubeconfig is not None:
        from lightkube import KubeConfig

        config = KubeConfig.from_file(kubeconfig).get()
        user = config.user if config is not None else None
        token = user.token if user is not None else None
        token_file = Path(user.token_file) if user is not None and user.token_file else None
        where = f"the user of --kubeconfig {kubeconfig}"

    def read() -> str:
        try:
            value = token_file.read_text().strip() if token_file is not None else token
        except OSError as err:
            raise TokenError(f"cannot read the token of {where}: {err}") from None
        if not value:
            raise TokenError(f"no bearer token in {where}")
        return value

    return read


class CertificateClient:
    """One channel to the certificate service, rebuilt when the roots it trusts change."""

    def __init__(
        self,
        address: str,
        token: Callable[[], str],
        *,
        insecure: bool = False,
        timeout: float = CALL_TIMEOUT,
        server_name: str = SERVICE_NAME,
    ) -> None:
        self.address = address
        self.server_name = server_name  # the TLS name checked, whatever address is dialled
        self.insecure = insecure or address.startswith("unix:")
        self._token = token
        self._timeout = timeout
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._roots: bytes | None = None

    def _stub(self, roots_pem: bytes | None) -> pb_grpc.CertificateServiceStub:
        with self._lock:
            if self._channel is None or (not self.insecure and roots_pem != self._roots):
                if self._channel is not None:
                    self._channel.close()
                if self.insecure:
                    self._channel = grpc.insecure_channel(self.address)
                else:
                    if not roots_pem:
                        raise CaRefused(
                            "UNAVAILABLE",
                            "no-trust-bundle",
                            "no trust bundle yet to verify the CA with",
                        )
                    self._channel = grpc.secure_channel(
                        self.address,
                        grpc.ssl_channel_credentials(roots_pem),
                        options=[("grpc.ssl_target_name_override", self.server_name)],
                    )
                self._roots = roots_pem
            return pb_grpc.CertificateServiceStub(self._channel)

    def create(self, csr_pem: bytes, lifetime: int, roots_pem: bytes | None) -> Issued:
        try:
            token = self._token()
        except TokenError as err:
            raise CaRefused("UNAUTHENTICATED", "no-token", str(err)) from None
        stub = self._stub(roots_pem)
        request = pb.CreateCertificateRequest(csr=csr_pem.decode(), validity_duration=lifetime)
        try:
            response = stub.CreateCertificate(
                request, metadata=[("authorization", f"Bearer {token}")], timeout=self._timeout
            )
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            details = (err.details() if hasattr(err, "details") else None) or ""
            head, sep, _ = details.partition(":")
            service_reason = bool(sep) and head.replace("-", "").isalpha() and " " not in head
            reason = head if service_reason else code.name.lower()
            raise CaRefused(code.name, reason, details or code.name) from None
        return Issued(tuple(response.cert_chain), tuple(response.trust_bundle))

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
