"""The service over TLS with a serving certificate signed by the CA; the lifetime rule under
Hypothesis; the package boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given
from hypothesis import strategies as st

from agent.svid.gen import certificate_pb2 as pb
from agent.svid.gen import certificate_pb2_grpc as pb_grpc
from controlplane.certificates import serve
from controlplane.issuer import BAD_VALIDITY, Refusal, lifetime_for
from identity.ca import CertificateAuthority
from tests.unit.controlplane.conftest import AGENT_N1, make_servicer
from tests.unit.identity.helpers import NOW, cert, csr_pem, key_pem, p256, root, usage
from tests.unit.test_boundaries import CONTRACTS, _agent_runtime

HOST = "tulle-controlplane.tulle-system.svc"


def test_agents_reach_the_service_over_tls_trusting_only_the_bundle() -> None:
    # The TLS stack checks against the real clock; the servicer issues at the fixed NOW.
    wall = datetime.now(UTC)
    ca = CertificateAuthority.generate_root("tulle test root", min(wall, NOW) - timedelta(days=1))
    key = p256()
    serving = cert(key, (ca.cert, ca.key), sans=[x509.DNSName(HOST)], key_usage=usage(sign=True),
                   start=wall - timedelta(hours=1), end=wall + timedelta(hours=1))
    chain = serving.public_bytes(Encoding.PEM) + ca.cert.public_bytes(Encoding.PEM)
    credentials = grpc.ssl_server_credentials([(key_pem(key), chain)])
    server, port = serve(make_servicer(ca), "127.0.0.1:0", credentials)
    options = [("grpc.ssl_target_name_override", HOST)]
    bundle = ca.root.public_bytes(Encoding.PEM)
    stranger = root("another root")[0].public_bytes(Encoding.PEM)
    request = pb.CreateCertificateRequest(csr=csr_pem().decode())
    metadata = [("authorization", f"Bearer {AGENT_N1}")]
    try:
        with grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(bundle),
                                 options) as channel:
            response = pb_grpc.CertificateServiceStub(channel).CreateCertificate(
                request, metadata=metadata, timeout=10)
            assert len(response.cert_chain) == 1
        # A client that does not trust the CA never gets as far as sending its token.
        with grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(stranger),
                                 options) as channel:
            with pytest.raises(grpc.RpcError) as info:
                pb_grpc.CertificateServiceStub(channel).CreateCertificate(
                    request, metadata=metadata, timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None).wait()


MINUTE, DAY = timedelta(minutes=1), timedelta(hours=24)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_lifetime_is_refused_or_within_the_bounds(seconds: int) -> None:
    try:
        lifetime = lifetime_for(seconds, MINUTE, DAY)
    except Refusal as r:
        assert r.reason == BAD_VALIDITY and r.status == "invalid-argument"
        assert seconds < 60
        return
    assert MINUTE <= lifetime <= DAY
    assert lifetime == (DAY if seconds == 0 else min(timedelta(seconds=min(seconds, 86400)), DAY))


def test_no_runtime_package_the_waypoint_or_identity_imports_the_control_plane() -> None:
    [contract] = [c for c in CONTRACTS if c["forbidden_modules"] == ["controlplane"]]
    assert contract["type"] == "forbidden"
    sources = set(contract["source_modules"])
    assert _agent_runtime() <= sources, sorted(_agent_runtime() - sources)
    assert {"identity", "l7proxy", "gatewayapi"} <= sources
