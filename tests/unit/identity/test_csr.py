"""CSR validation: each refusal built for real with cryptography, with its reason code."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.certs import public_bytes
from identity.csr import MAX_CSR_BYTES, REASONS, CsrError, validate_csr
from tests.unit.identity.helpers import DB, WEB, csr_der, csr_pem, p256, rsa_key, uri


def refused(data: bytes, reason: str, match: str | None = None) -> CsrError:
    with pytest.raises(CsrError, match=match) as caught:
        validate_csr(data, WEB)
    assert caught.value.reason == reason, caught.value
    return caught.value


def test_a_good_request_passes_as_pem_and_der() -> None:
    key = p256()
    for data in (csr_der(key), csr_pem(key)):
        csr = validate_csr(data, WEB)
        assert public_bytes(csr.public_key()) == public_bytes(key.public_key())


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_p256_and_p384_keys_pass(curve: ec.EllipticCurve) -> None:
    validate_csr(csr_der(ec.generate_private_key(curve)), WEB)


def test_rsa_2048_passes() -> None:
    validate_csr(csr_der(rsa_key(2048)), WEB)


def test_too_large_is_refused_before_parsing() -> None:
    refused(b"\x30" * (MAX_CSR_BYTES + 1), "too-large", "16385 bytes")


@pytest.mark.parametrize(
    "data", [b"", b"hello", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", b"\x30\x82\xff\xff"]
)
def test_garbage_is_malformed(data: bytes) -> None:
    refused(data, "malformed", "not a certificate signing request")


def test_truncated_der_is_malformed() -> None:
    refused(csr_der()[:-10], "malformed")


def test_a_forged_signature_is_refused() -> None:
    der = bytearray(csr_der())
    der[-5] ^= 0x01  # inside the ECDSA signature, the last field of the request
    refused(bytes(der), "bad-signature", "does not verify")


def test_a_request_signed_by_another_key_is_refused() -> None:
    # Key A's request re-signed by key B: a valid ECDSA signature, but no proof of possession.
    der = csr_der(p256())
    csr = x509.load_der_x509_csr(der)
    other = p256()
    for _ in range(100):  # ECDSA signatures vary in length: keep one of the same length
        signature = other.sign(csr.tbs_certrequest_bytes, ec.ECDSA(hashes.SHA256()))
        if len(signature) == len(csr.signature):
            break
    else:
        pytest.fail("no same-length signature in 100 tries")
    assert der.endswith(csr.signature)
    refused(der[: -len(signature)] + signature, "bad-signature", "does not verify")


@pytest.mark.filterwarnings("ignore:SHA1 signatures are deprecated")
def test_sha1_signatures_are_refused() -> None:
    refused(csr_der(digest=hashes.SHA1()), "bad-signature", "SHA1")  # noqa: S303


def test_rsa_1024_is_weak() -> None:
    refused(csr_der(rsa_key(1024)), "weak-key", "RSA-1024 is under 2048")


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (ec.generate_private_key(ec.SECP521R1()), "secp521r1"),
        (ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
        (ed25519.Ed25519PrivateKey.generate(), "Ed25519PublicKey"),
        (dsa.generate_private_key(2048), "DSAPublicKey"),
    ],
)
def test_other_keys_are_refused_by_name(key: object, named: str) -> None:
    refused(csr_der(key), "unsupported-key", named)  # type: ignore[arg-type]


def test_two_uri_sans_are_refused() -> None:
    refused(csr_der(sans=[uri(WEB), uri(DB)]), "wrong-identity", "2 URI SANs")


def test_the_same_uri_twice_is_refused() -> None:
    refused(csr_der(sans=[uri(WEB), uri(WEB)]), "wrong-identity", "2 URI SANs")


@pytest.mark.parametrize(
    "extra",
    [
        x509.DNSName("web.shop.svc.cluster.local"),
        x509.IPAddress(ipaddress.ip_address("10.244.1.5")),
        x509.RFC822Name("web@shop"),
    ],
)
def test_dns_ip_and_email_sans_are_refused(extra: x509.GeneralName) -> None:
    err = refused(csr_der(sans=[uri(WEB), extra]), "wrong-identity", "only a URI is allowed")
    assert type(extra).__name__ in err.message


def test_no_san_is_refused() -> None:
    refused(csr_der(sans=[]), "wrong-identity", "no subjectAltName")


def test_another_identity_is_refused() -> None:
    refused(csr_der(sans=[uri(DB)]), "wrong-identity", "sa/db; want spiffe://cluster.local/ns/shop/sa/web")


@pytest.mark.parametrize(
    "text", ["spiffe://cluster.local/ns/shop/sa/web/", "SPIFFE://cluster.local/ns/shop/sa/web",
             "https://cluster.local/ns/shop/sa/web"]
)
def test_a_uri_that_is_not_the_spiffe_id_is_refused(text: str) -> None:
    refused(csr_der(sans=[x509.UniformResourceIdentifier(text)]), "wrong-identity", "not a SPIFFE")


def test_a_ca_request_is_refused() -> None:
    refused(csr_der(ca=True), "ca-requested", "CA:true")


def test_a_ca_false_request_passes() -> None:
    validate_csr(csr_der(ca=False), WEB)


GOOD = csr_der()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(max_examples=500)
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1,
                max_size=4))
def test_mutated_requests_are_refused_with_a_reason_or_still_pass(
    edits: list[tuple[int, int]]
) -> None:
    der = bytearray(GOOD)
    for at, value in edits:
        der[at] = value
    try:
        validate_csr(bytes(der), WEB)
    except CsrError as e:
        assert e.reason in REASONS
