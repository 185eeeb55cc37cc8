"""The certificate service end to end over real gRPC: who gets an SVID, who is refused with
which status and reason, and how long the SVID lives."""

from __future__ import annotations

import logging
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from controlplane.certificates import MAX_REQUEST_BYTES, SERVICE
from identity.bundle import TrustBundle, verify_svid
from identity.certs import not_after, not_before, public_bytes
from identity.spiffe import workload_id
from tests.unit.controlplane.conftest import WORKLOAD, Service
from tests.unit.identity.helpers import (
    DB,
    NOW,
    TD,
    WEB,
    csr_der,
    csr_pem,
    p256,
    rsa_key,
    uri,
)


def pem(der: bytes) -> str:
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()


def refused(service: Service, csr: str | bytes, **kw: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        service.call(csr, **kw)  # type: ignore[arg-type]
    return info.value


def leaf_of(response: object) -> x509.Certificate:
    return x509.load_pem_x509_certificate(response.cert_chain[0].encode())  # type: ignore[attr-defined]


def test_an_agent_gets_the_svid_of_a_pod_on_its_node_and_it_verifies(service: Service) -> None:
    key = p256()
    response = service.call(csr_pem(key))
    chain = [x509.load_pem_x509_certificate(c.encode()) for c in response.cert_chain]
    bundle = TrustBundle.from_pem(TD, "".join(response.trust_bundle).encode())
    assert bundle.roots == (service.ca.root,)
    assert service.ca.root not in chain  # the root travels in trust_bundle only
    assert verify_svid(chain, bundle, NOW + timedelta(minutes=1)) == WEB
    assert public_bytes(chain[0].public_key()) == public_bytes(key.public_key())
    assert service.count("issued") == 1


def test_an_identity_with_no_pod_on_the_callers_node_is_denied_saying_why(
    service: Service,
) -> None:
    error = refused(service, csr_pem(sans=[uri(DB)]))  # shop/db runs on n2 only
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "node-not-authorized: no pod of shop/db on node n1"
    other_domain = workload_id("other.example", "shop", "web")
    error = refused(service, csr_pem(sans=[uri(other_domain)]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "trust domain 'other.example' is not ours" in error.details()
    assert service.count("node-not-authorized") == 2
    assert service.count("issued") == 0


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ([], "no authorization metadata"),
        ([("authorization", "Bearer nope")], "not known"),
        ([("authorization", "Basic dXNlcjpwdw==")], "not 'Bearer <token>'"),
        ([("authorization", "Bearer ")], "the bearer token is empty"),
        ([("authorization", "Bearer token-agent-n1")] * 2, "2 authorization entries"),
    ],
)
def test_no_or_bad_credentials_are_unauthenticated(
    service: Service, metadata: list[tuple[str, str]], says: str
) -> None:
    from agent.svid.gen import certificate_pb2 as pb

    request = pb.CreateCertificateRequest(csr=csr_pem().decode())
    with pytest.raises(grpc.RpcError) as info:
        service.stub.CreateCertificate(request, metadata=metadata, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert info.value.details().startswith("unauthenticated: ")
    assert says in info.value.details()
    assert "token-agent-n1" not in info.value.details()
    assert service.count("unauthenticated") == 1


def test_a_caller_that_is_not_an_agent_is_denied(service: Service) -> None:
    # A workload's own token, for its own identity, on its own node: still not an agent.
    error = refused(service, csr_pem(), token=WORKLOAD)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "not-an-agent: ServiceAccount shop/web is not a node agent's"
    assert service.count("not-an-agent") == 1


@pytest.mark.parametrize(
    ("csr", "reason", "says"),
    [
        (lambda: pem(csr_der(sans=[uri(WEB), uri(DB)])), "wrong-identity", "2 URI SANs"),
        (lambda: pem(csr_der(sans=[uri(WEB), x509.DNSName("web.shop")])), "wrong-identity",
         "DNSName"),
        (lambda: pem(csr_der(sans=[])), "wrong-identity", "no subjectAltName"),
        (lambda: pem(csr_der(ca=True)), "ca-requested", "CA:true"),
        (lambda: pem(csr_der(rsa_key(1024))), "weak-key", "RSA-1024 is under 2048 bits"),
        (lambda: "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n", "malformed",
         "not a PEM certificate signing request"),
        (lambda: "", "malformed", "not a PEM"),
        (lambda: "A" * 20_000, "too-large", "20000 bytes, over 16384"),
    ],
    ids=["two-sans", "uri-and-dns", "no-san", "ca-true", "rsa-1024", "bad-pem", "empty",
         "too-large"],
)
def test_a_bad_csr_is_invalid_argument_with_its_reason(
    service: Service, csr: object, reason: str, says: str
) -> None:
    error = refused(service, csr())  # type: ignore[operator]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{reason}: ")
    assert says in error.details()
    assert service.count(reason) == 1


@pytest.mark.parametrize(
    ("asked", "lives"),
    [
        (10 * 365 * 86400, timedelta(hours=24)),  # ten years: clamped to the maximum
        (2**63 - 1, timedelta(hours=24)),  # the largest int64: no overflow
        (0, timedelta(hours=24)),  # unset: the maximum
        (3600, timedelta(hours=1)),
        (60, timedelta(minutes=1)),  # the CA's minimum itself
    ],
)
def test_the_validity_is_clamped_to_the_maximum(
    service: Service, asked: int, lives: timedelta
) -> None:
    leaf = leaf_of(service.call(csr_pem(), validity=asked))
    assert not_after(leaf) == NOW + lives
    assert not_before(leaf) < NOW  # backdated for clock skew


@pytest.mark.parametrize("asked", [59, 1, -1, -(2**63)])
def test_a_validity_under_the_minimum_is_refused_not_raised(service: Service, asked: int) -> None:
    error = refused(service, csr_pem(), validity=asked)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"bad-validity: validity_duration {asked} s is under the minimum 60 s"


def test_garbage_is_refused_without_a_traceback_and_the_server_keeps_serving(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    raw = service.channel.unary_unary(f"/{SERVICE}/CreateCertificate")  # bytes in, bytes out
    metadata = [("authorization", "Bearer token-agent-n1")]
    caplog.set_level(logging.DEBUG)
    # 100 KB: over the message limit, refused before decoding.
    for body in (b"\xff" * 100_000, b"\x0a\xa0\x8d\x06" + b"x" * 100_000):
        with pytest.raises(grpc.RpcError) as info:
            raw(body, metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Under the limit but not a CreateCertificateRequest: a varint that never ends, a length
    # past the end, a string field that is not UTF-8.
    assert MAX_REQUEST_BYTES > 10_000
    for body in (b"\xff" * 10_000, b"\x0a\xff\xff\x03abc", b"\x0a\x02\xc3\x28"):
        with pytest.raises(grpc.RpcError) as info:
            raw(body, metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("bad-request: not a CreateCertificateRequest")
    # ... and garbage from a caller without a token is UNAUTHENTICATED before decoding.
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\xff" * 10_000, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert service.count("bad-request") == 3
    assert leaf_of(service.call(csr_pem()))  # still serving
