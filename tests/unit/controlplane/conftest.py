"""A real certificate service on 127.0.0.1 (an ephemeral port), insecure or TLS, with a
fixed clock, a static token table and a pod table: agent n1's token, a workload's token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry

from agent.svid.gen import certificate_pb2 as pb
from agent.svid.gen import certificate_pb2_grpc as pb_grpc
from controlplane.auth import Caller, StaticTokens
from controlplane.certificates import CertificateServicer, serve
from controlplane.issuer import AGENT_ACCOUNT
from identity.authz import PodRecord
from identity.ca import CertificateAuthority
from tests.unit.identity.helpers import NOW, TD

AGENT_N1 = "token-agent-n1"
WORKLOAD = "token-shop-web"
PODS = [
    PodRecord("shop", "web-1", "n1", "web"),
    PodRecord("shop", "db-1", "n2", "db"),
]


@dataclass
class Service:
    servicer: CertificateServicer
    registry: CollectorRegistry
    ca: CertificateAuthority
    stub: pb_grpc.CertificateServiceStub
    channel: grpc.Channel

    def count(self, result: str) -> float:
        return self.registry.get_sample_value("tulle_ca_requests_total", {"result": result}) or 0

    def call(
        self, csr: str | bytes, validity: int = 0, token: str | None = AGENT_N1
    ) -> pb.CreateCertificateResponse:
        text = csr.decode() if isinstance(csr, bytes) else csr
        metadata = [("authorization", f"Bearer {token}")] if token else []
        request = pb.CreateCertificateRequest(csr=text, validity_duration=validity)
        return self.stub.CreateCertificate(request, metadata=metadata, timeout=10)


def make_servicer(ca: CertificateAuthority, **kw: object) -> CertificateServicer:
    tokens = StaticTokens({
        AGENT_N1: Caller("n1", AGENT_ACCOUNT),
        WORKLOAD: Caller("n1", "shop/web"),
    })
    return CertificateServicer(
        ca, TD, tokens, lambda node: [p for p in PODS if p.node_name == node],
        clock=lambda: NOW, **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate_root("tulle test root", NOW - timedelta(days=1))


@pytest.fixture
def service(ca: CertificateAuthority) -> Iterator[Service]:
    registry = CollectorRegistry()
    servicer = make_servicer(ca, registry=registry)
    server, port = serve(servicer, "127.0.0.1:0", None)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Service(servicer, registry, ca, pb_grpc.CertificateServiceStub(channel), channel)
    finally:
        channel.close()
        server.stop(None).wait()
