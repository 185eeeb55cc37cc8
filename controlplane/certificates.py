"""The certificate service over gRPC: `CertificateServicer` turns a CreateCertificate call
into `controlplane.issuer` decisions and gRPC statuses; `serve` starts the server.

Statuses: UNAUTHENTICATED (no, malformed or unknown token), PERMISSION_DENIED (not an agent;
no pod of that identity on the caller's node), INVALID_ARGUMENT (a bad CSR, validity or
request; the details start with the reason code, "weak-key: RSA-1024 is under 2048 bits"),
UNAVAILABLE (the CA cannot sign now). Every call is counted once in
`tulle_ca_requests_total{result}`: `issued` or the refusal's reason.

The server refuses messages over MAX_REQUEST_BYTES before decoding them (a CSR is at most
16 KiB), and a message that is not a CreateCertificateRequest is INVALID_ARGUMENT
(`bad-request`), not a logged traceback.

TLS: in a cluster `serve` gets server credentials from the service's own CA-signed serving
certificate (grpc.ssl_server_credentials with the key and chain; agents trust the bundle's
roots), because the bearer token must never cross the network in the clear. Insecure
serving (`tls_credentials=None`) is for tests and a unix socket only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.message import DecodeError
from prometheus_client import CollectorRegistry, Counter

from agent.svid.gen import certificate_pb2 as pb
from controlplane.auth import Authenticator, Unauthenticated
from controlplane.issuer import AGENT_ACCOUNT, Issuer, Refusal, Status
from identity.authz import PodRecord
from identity.bundle import TrustBundle
from identity.ca import DEFAULT_LIFETIME, CertificateAuthority

log = logging.getLogger(__name__)
SERVICE = "tulle.identity.v1.CertificateService"
MAX_REQUEST_BYTES = 32 * 1024
BAD_REQUEST = "bad-request"
UNAUTHENTICATED = "unauthenticated"
CODES: dict[Status, grpc.StatusCode] = {
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "permission-denied": grpc.StatusCode.PERMISSION_DENIED,
    "invalid-argument": grpc.StatusCode.INVALID_ARGUMENT,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
}


@dataclass(frozen=True)
class Undecodable:
    """A request body that is not a CreateCertificateRequest (the deserializer's answer)."""

    error: str


Request = pb.CreateCertificateRequest | Undecodable


def parse_request(data: bytes) -> Request:
    try:
        return pb.CreateCertificateRequest.FromString(data)
    except DecodeError as e:
        return Undecodable(str(e) or "undecodable")


class CertificateServicer:
    """CreateCertificate for agents; see the module docstring for statuses and metrics."""

    def __init__(
        self,
        ca: CertificateAuthority,
        trust_domain: str,
        authenticate: Authenticator,
        pods_on_node: Callable[[str], Iterable[PodRecord]],
        *,
        agent_accounts: frozenset[str] = frozenset({AGENT_ACCOUNT}),
        max_validity: timedelta = DEFAULT_LIFETIME,
        min_validity: timedelta | None = None,
        trust_bundle: Callable[[], TrustBundle] | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.issuer = Issuer(
            ca, trust_domain, pods_on_node, agent_accounts, max_validity, min_validity, trust_bundle
        )
        self.authenticate = authenticate
        self.clock = clock
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "tulle_ca_requests",
            "CreateCertificate calls by result: issued or the refusal's reason",
            ["result"],
            registry=self.registry,
        )

    def _refuse(
        self, context: grpc.ServicerContext, status: Status, reason: str, message: str
    ) -> NoReturn:
        self.requests.labels(reason).inc()
        log.warning("refused %s: %s: %s", context.peer(), reason, message)
        context.abort(CODES[status], f"{reason}: {message}")
        raise AssertionError("unreachable: abort raises")

    def CreateCertificate(  # noqa: N802 (the gRPC method name)
        self, request: Request, context: grpc.ServicerContext
    ) -> pb.CreateCertificateResponse:
        try:
            caller = self.authenticate(context.invocation_metadata())
        except Unauthenticated as e:
            self._refuse(context, "unauthenticated", UNAUTHENTICATED, str(e))
        if isinstance(request, Undecodable):
            self._refuse(
                context,
                "invalid-argument",
                BAD_REQUEST,
                f"not a CreateCertificateRequest ({request.error})",
            )
        try:
            issued = self.issuer.issue(caller, request.csr, request.validity_duration, self.clock())
        except Refusal as r:
            self._refuse(context, r.status, r.reason, r.message)
        self.requests.labels("issued").inc()
        log.info("issued %s to node %s (%s)", issued.spiffe_id, caller.node, issued.because)
        return pb.CreateCertificateResponse(
            cert_chain=[c.public_bytes(Encoding.PEM).decode() for c in issued.chain],
            trust_bundle=[r.public_bytes(Encoding.PEM).decode() for r in issued.bundle.roots],
        )


def handler(servicer: CertificateServicer) -> grpc.GenericRpcHandler:
    """The service's handler, decoding requests with `parse_request` (never a traceback)."""
    method = grpc.unary_unary_rpc_method_handler(
        servicer.CreateCertificate,
        request_deserializer=parse_request,
        response_serializer=pb.CreateCertificateResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE, {"CreateCertificate": method})


def serve(
    servicer: CertificateServicer,
    address: str,
    tls_credentials: grpc.ServerCredentials | None,
    max_workers: int = 4,
) -> tuple[grpc.Server, int]:
    """A started server on `address` ("host:port", port 0 picks one, or "unix:/path") and its
    bound port (0 for a unix socket). TLS with `tls_credentials`; insecure only when None."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="casvc"),
        handlers=[handler(servicer)],
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    if tls_credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, tls_credentials)
    server.start()
    return server, port
