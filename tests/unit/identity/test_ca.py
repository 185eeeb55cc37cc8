"""The CA: roots generated or loaded from a Secret's PEM, intermediates, and the X.509-SVIDs it
issues (the spec's fields, the lifetime rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.bundle import TrustBundle, verify_svid
from identity.ca import CLOCK_SKEW, CaError, CertificateAuthority
from identity.certs import not_after, not_before, public_bytes, to_pem
from identity.csr import CsrError
from tests.unit.identity.helpers import (
    DB,
    NOW,
    TD,
    WEB,
    cert,
    csr_der,
    key_pem,
    p256,
    root,
    usage,
)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate_root("tulle-root", NOW - timedelta(days=1))


def test_a_generated_root_is_a_self_signed_p256_ca(ca: CertificateAuthority) -> None:
    assert ca.root is ca.cert and ca.chain == ()
    public = ca.cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    assert ca.cert.issuer == ca.cert.subject
    assert "CN=tulle-root" in ca.cert.subject.rfc4514_string()
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    assert TrustBundle(TD, (ca.root,)).roots == (ca.cert,)


def test_an_svid_follows_the_x509_svid_spec(ca: CertificateAuthority) -> None:
    key = p256()
    (leaf,) = ca.issue(csr_der(key), WEB, NOW)
    exts = leaf.extensions
    san = exts.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.UniformResourceIdentifier(str(WEB))]
    constraints = exts.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    key_usage = exts.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value == usage(sign=True)
    eku = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert public_bytes(leaf.public_key()) == public_bytes(key.public_key())
    assert leaf.issuer == ca.cert.subject
    assert not_before(leaf) == NOW - CLOCK_SKEW
    assert not_after(leaf) == NOW + timedelta(hours=24)
    assert verify_svid([leaf], TrustBundle(TD, (ca.root,)), NOW) == WEB


def test_serials_are_random_positive_and_distinct(ca: CertificateAuthority) -> None:
    serials = {ca.issue(csr_der(), WEB, NOW)[0].serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) > 120  # 128 random bits, not a counter


def test_the_request_is_validated_before_signing(ca: CertificateAuthority) -> None:
    with pytest.raises(CsrError) as caught:
        ca.issue(csr_der(), DB, NOW)  # the CSR asks for WEB
    assert caught.value.reason == "wrong-identity"


def test_lifetime_is_configurable_down_to_the_minimum(ca: CertificateAuthority) -> None:
    (leaf,) = ca.issue(csr_der(), WEB, NOW, lifetime=timedelta(minutes=5))
    assert not_after(leaf) == NOW + timedelta(minutes=5)
    with pytest.raises(CaError, match="under the minimum 0:01:00"):
        ca.issue(csr_der(), WEB, NOW, lifetime=timedelta(seconds=59))


def test_not_after_is_capped_by_the_issuers(ca: CertificateAuthority) -> None:
    short = ca.intermediate("short", NOW, lifetime=timedelta(hours=2))
    leaf, _ = short.issue(csr_der(), WEB, NOW, lifetime=timedelta(hours=24))
    assert not_after(leaf) == not_after(short.cert) == NOW + timedelta(hours=2)


def test_an_expired_ca_issues_nothing(ca: CertificateAuthority) -> None:
    short = ca.intermediate("short", NOW, lifetime=timedelta(hours=2))
    with pytest.raises(CaError, match="expired"):
        short.issue(csr_der(), WEB, NOW + timedelta(hours=3))


def test_an_intermediate_issues_a_chain_without_the_root(ca: CertificateAuthority) -> None:
    mid = ca.intermediate("mid", NOW)
    assert mid.root == ca.cert and mid.chain == (ca.cert,)
    chain = mid.issue(csr_der(), WEB, NOW)
    assert [c.subject for c in chain[1:]] == [mid.cert.subject]
    assert verify_svid(chain, TrustBundle(TD, (ca.root,)), NOW) == WEB


def test_a_pathlen_0_intermediate_may_not_sign_a_ca(ca: CertificateAuthority) -> None:
    with pytest.raises(CaError, match="pathLen 0: it allows no 1 intermediate"):
        ca.intermediate("mid", NOW).intermediate("below", NOW)


def test_a_root_pathlen_bounds_every_level_below(ca: CertificateAuthority) -> None:
    key = p256()
    tight = cert(key, (None, key), "tight", ca=True, path_length=1,
                 key_usage=usage(cert_sign=True))
    top = CertificateAuthority(tight, key)
    upper = top.intermediate("upper", NOW, path_length=None)  # unlimited, but the root is not
    with pytest.raises(CaError, match="'CN=tight' has pathLen 1: it allows no 2"):
        upper.intermediate("lower", NOW)
    lower_key = p256()
    lower = cert(lower_key, (upper.cert, upper.key), "lower", ca=True,
                 key_usage=usage(cert_sign=True))
    with pytest.raises(CaError, match="'CN=tight' has pathLen 1: it allows no 2"):
        CertificateAuthority.from_pem(to_pem([lower, upper.cert, tight]), key_pem(lower_key))


def test_two_levels_of_intermediates(ca: CertificateAuthority) -> None:
    lower = ca.intermediate("upper", NOW, path_length=1).intermediate("lower", NOW)
    chain = lower.issue(csr_der(), WEB, NOW)
    assert len(chain) == 3
    assert verify_svid(chain, TrustBundle(TD, (ca.root,)), NOW) == WEB


def secret(authority: CertificateAuthority) -> tuple[bytes, bytes]:
    return to_pem([authority.cert, *authority.chain]), key_pem(authority.key)


def test_from_pem_loads_a_secrets_root_and_intermediate(ca: CertificateAuthority) -> None:
    loaded = CertificateAuthority.from_pem(*secret(ca))
    assert loaded.cert == ca.cert and loaded.root == ca.cert
    mid = ca.intermediate("mid", NOW)
    loaded_mid = CertificateAuthority.from_pem(*secret(mid))
    assert loaded_mid.root == ca.cert
    chain = loaded_mid.issue(csr_der(), WEB, NOW)
    assert verify_svid(chain, TrustBundle(TD, (ca.root,)), NOW) == WEB


def test_from_pem_refuses_a_key_that_does_not_match(ca: CertificateAuthority) -> None:
    with pytest.raises(CaError, match="does not match"):
        CertificateAuthority.from_pem(to_pem([ca.cert]), key_pem(p256()))


def test_from_pem_refuses_a_cert_that_is_not_a_ca() -> None:
    key = p256()
    not_ca = cert(key, (None, key), "server", ca=False, key_usage=usage(sign=True))
    with pytest.raises(CaError, match="is not a CA"):
        CertificateAuthority.from_pem(to_pem([not_ca]), key_pem(key))
    no_constraints = cert(key, (None, key), "server", ca=None)
    with pytest.raises(CaError, match="is not a CA"):
        CertificateAuthority.from_pem(to_pem([no_constraints]), key_pem(key))


def test_from_pem_refuses_a_ca_without_key_cert_sign() -> None:
    key = p256()
    odd = cert(key, (None, key), "odd", ca=True, key_usage=usage(sign=True))
    with pytest.raises(CaError, match="lacks keyCertSign"):
        CertificateAuthority.from_pem(to_pem([odd]), key_pem(key))


def test_from_pem_accepts_a_ca_without_key_usage() -> None:
    # `openssl req -x509` with the default v3_ca section sets CA:true and no keyUsage.
    key = p256()
    plain = cert(key, (None, key), "openssl-root", ca=True)
    assert CertificateAuthority.from_pem(to_pem([plain]), key_pem(key)).root == plain


def test_from_pem_refuses_an_intermediate_without_its_root(ca: CertificateAuthority) -> None:
    mid = ca.intermediate("mid", NOW)
    with pytest.raises(CaError, match="not a self-signed root"):
        CertificateAuthority.from_pem(to_pem([mid.cert]), key_pem(mid.key))


def test_from_pem_refuses_a_chain_whose_links_do_not_sign(ca: CertificateAuthority) -> None:
    mid = ca.intermediate("mid", NOW)
    stranger, _ = root("root")  # same name as no one; a different key
    impostor, _ = root(ca.cert.subject)  # the root's very name, another key
    for wrong in (stranger, impostor):
        with pytest.raises(CaError, match="is not signed by the next certificate"):
            CertificateAuthority.from_pem(to_pem([mid.cert, wrong]), key_pem(mid.key))


def test_from_pem_refuses_garbage_and_encrypted_keys(ca: CertificateAuthority) -> None:
    cert_pem, _ = secret(ca)
    with pytest.raises(CaError, match="tls.crt: no PEM certificate"):
        CertificateAuthority.from_pem(b"junk", key_pem(ca.key))
    locked = ca.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(CaError, match="tls.key is not an unencrypted PEM private key"):
        CertificateAuthority.from_pem(cert_pem, locked)
