"""The trust bundle and SVID verification: each refusal built for real, root rotation with
overlap, chains through intermediates, and the renewal time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.bundle import (
    REASONS,
    BundleError,
    SvidError,
    TrustBundle,
    parse_chain,
    renew_at,
    verify_svid,
)
from identity.ca import CertificateAuthority
from identity.certs import to_pem
from identity.spiffe import workload_id
from tests.unit.identity.helpers import (
    NOW,
    TD,
    WEB,
    cert,
    csr_der,
    leaf,
    p256,
    root,
    uri,
    usage,
)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate_root("old-root", NOW - timedelta(days=1))


@pytest.fixture(scope="module")
def bundle(ca: CertificateAuthority) -> TrustBundle:
    return TrustBundle(TD, (ca.root,))


def refused(chain: list[x509.Certificate], bundle: TrustBundle, reason: str, match: str) -> None:
    with pytest.raises(SvidError, match=match) as caught:
        verify_svid(chain, bundle, NOW)
    assert caught.value.reason == reason, caught.value


def test_pem_round_trip_and_no_duplicates(ca: CertificateAuthority) -> None:
    other, _ = root("other")
    bundle = TrustBundle.from_pem(TD, to_pem([ca.root, other, ca.root]))
    assert bundle.roots == (ca.root, other)
    assert TrustBundle.from_pem(TD, bundle.to_pem()) == bundle


def test_a_bundle_refuses_what_is_not_a_root(ca: CertificateAuthority) -> None:
    with pytest.raises(BundleError, match="not PEM certificates"):
        TrustBundle.from_pem(TD, b"")
    with pytest.raises(BundleError, match="at least one root"):
        TrustBundle(TD, ())
    svid = ca.issue(csr_der(), WEB, NOW)[0]
    with pytest.raises(BundleError, match="is not a CA"):
        TrustBundle(TD, (svid,))
    with pytest.raises(BundleError, match="is not self-signed"):
        TrustBundle(TD, (ca.intermediate("mid", NOW).cert,))


def test_an_svid_from_another_root_is_unknown(bundle: TrustBundle) -> None:
    stranger = CertificateAuthority.generate_root("old-root", NOW)  # even with the same name
    refused(stranger.issue(csr_der(), WEB, NOW), bundle, "unknown-ca", "not signed by a root")


def test_a_forged_signature_is_refused(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    good = ca.issue(csr_der(), WEB, NOW)[0]
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    forged = x509.load_der_x509_certificate(bytes(der))
    refused([forged], bundle, "unknown-ca", "not signed by a root")


def test_a_forged_link_is_a_bad_signature(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    mid = ca.intermediate("mid", NOW)
    impostor_key = p256()
    impostor = cert(impostor_key, (ca.cert, impostor_key), mid.cert.subject, ca=True,
                    path_length=0, key_usage=usage(cert_sign=True))  # named as mid, self-made
    svid = leaf((mid.cert, mid.key))
    refused([svid, impostor], bundle, "bad-signature", "does not verify")


def test_expired_and_not_yet_valid(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    (svid,) = ca.issue(csr_der(), WEB, NOW, lifetime=timedelta(hours=1))
    assert verify_svid([svid], bundle, NOW + timedelta(minutes=59)) == WEB
    with pytest.raises(SvidError, match="expired at") as caught:
        verify_svid([svid], bundle, NOW + timedelta(hours=1, seconds=1))
    assert caught.value.reason == "expired"
    with pytest.raises(SvidError, match="is valid from") as caught:
        verify_svid([svid], bundle, NOW - timedelta(minutes=2))
    assert caught.value.reason == "not-yet-valid"


def test_an_expired_intermediate_fails_the_chain(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    key = p256()
    old_mid = cert(key, (ca.cert, ca.key), "mid", ca=True, key_usage=usage(cert_sign=True),
                   start=NOW - timedelta(days=2), end=NOW - timedelta(days=1))
    svid = leaf((old_mid, key))
    refused([svid, old_mid], bundle, "expired", "'CN=mid' expired")


def test_a_ca_true_leaf_is_not_an_svid(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    svid = leaf((ca.cert, ca.key), ca=True, key_usage=usage(sign=True, cert_sign=True))
    refused([svid], bundle, "not-an-svid", "the leaf is a CA")


def test_a_leaf_with_key_cert_sign_is_not_an_svid(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    svid = leaf((ca.cert, ca.key), key_usage=usage(sign=True, cert_sign=True))
    refused([svid], bundle, "not-an-svid", "keyCertSign")


def test_a_leaf_without_digital_signature_is_not_an_svid(
    ca: CertificateAuthority, bundle: TrustBundle
) -> None:
    refused([leaf((ca.cert, ca.key), key_usage=None)], bundle, "not-an-svid", "digitalSignature")


@pytest.mark.parametrize(
    ("sans", "match"),
    [
        ([], "0 URI SANs"),
        ([x509.DNSName("web.shop")], "0 URI SANs"),
        ([uri(WEB), uri(workload_id(TD, "shop", "db"))], "2 URI SANs"),
        ([x509.UniformResourceIdentifier("https://web.shop")], "not a SPIFFE ID"),
    ],
)
def test_leaves_without_one_spiffe_uri_are_not_svids(
    ca: CertificateAuthority, bundle: TrustBundle, sans: list[x509.GeneralName], match: str
) -> None:
    refused([leaf((ca.cert, ca.key), sans=sans)], bundle, "not-an-svid", match)


def test_another_trust_domain_is_refused(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    foreign = leaf((ca.cert, ca.key), workload_id("other.example", "shop", "web"))
    refused([foreign], bundle, "wrong-trust-domain", "not in trust domain 'cluster.local'")


def test_a_chain_through_a_non_ca_is_refused(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    # A legitimate SVID's key used to sign another "SVID": its holder must not mint identities.
    holder_key = p256()
    holder = cert(holder_key, (ca.cert, ca.key), "holder", sans=[uri(WEB)],
                  key_usage=usage(sign=True))
    minted = leaf((holder, holder_key), workload_id(TD, "kube-system", "admin"))
    refused([minted, holder], bundle, "bad-chain", "'CN=holder' is not a CA")


def test_path_length_is_enforced(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    key1, key2 = p256(), p256()
    upper = cert(key1, (ca.cert, ca.key), "upper", ca=True, path_length=0,
                 key_usage=usage(cert_sign=True))
    lower = cert(key2, (upper, key1), "lower", ca=True, path_length=0,
                 key_usage=usage(cert_sign=True))
    svid = leaf((lower, key2))
    refused([svid, lower, upper], bundle, "bad-chain", "'CN=upper' allows 0 intermediate CAs")


def test_a_chain_with_a_wrong_order_is_refused(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    upper = ca.intermediate("upper", NOW, path_length=1)
    lower = upper.intermediate("lower", NOW)
    chain = lower.issue(csr_der(), WEB, NOW)
    assert verify_svid(chain, bundle, NOW) == WEB
    refused([chain[0], chain[2], chain[1]], bundle, "bad-chain", "names issuer 'CN=lower,O=Tulle'")


def test_leaf_intermediate_root(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    mid = ca.intermediate("mid", NOW)
    svid, mid_cert = mid.issue(csr_der(), WEB, NOW)
    assert verify_svid([svid, mid_cert], bundle, NOW) == WEB
    assert verify_svid([svid, mid_cert, ca.root], bundle, NOW) == WEB  # root appended: fine
    refused([svid], bundle, "unknown-ca", "not signed by a root")  # intermediate missing


def test_a_fake_root_appended_does_not_help(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    fake = CertificateAuthority.generate_root("old-root", NOW)
    mid = fake.intermediate("mid", NOW)
    refused([*mid.issue(csr_der(), WEB, NOW), fake.root], bundle, "unknown-ca", "not signed by")


def test_a_too_long_chain_is_refused(ca: CertificateAuthority, bundle: TrustBundle) -> None:
    svid = ca.issue(csr_der(), WEB, NOW)[0]
    refused([svid] + [ca.root] * 8, bundle, "bad-chain", "9 certificates, over 8")
    refused([], bundle, "not-an-svid", "no certificate")


def test_root_rotation_keeps_both_during_the_overlap(ca: CertificateAuthority) -> None:
    new = CertificateAuthority.generate_root("new-root", NOW)
    old_svid = ca.issue(csr_der(), WEB, NOW)
    new_svid = new.issue(csr_der(), WEB, NOW)
    before = TrustBundle(TD, (ca.root,))
    overlap = before.with_root(new.root)
    assert overlap.roots == (ca.root, new.root)
    assert verify_svid(old_svid, overlap, NOW) == WEB
    assert verify_svid(new_svid, overlap, NOW) == WEB
    with pytest.raises(SvidError, match="unknown-ca"):
        verify_svid(new_svid, before, NOW)
    after = TrustBundle.from_pem(TD, overlap.to_pem()).without(ca.root)
    assert after.roots == (new.root,)
    assert verify_svid(new_svid, after, NOW) == WEB
    with pytest.raises(SvidError, match="unknown-ca"):
        verify_svid(old_svid, after, NOW)
    with pytest.raises(BundleError, match="not in the bundle"):
        after.without(ca.root)
    with pytest.raises(BundleError, match="at least one root"):
        after.without(new.root)


def test_renew_at_half_life(ca: CertificateAuthority) -> None:
    (svid,) = ca.issue(csr_der(), WEB, NOW)
    # notBefore is backdated by the clock skew allowance: half of (24 h + 1 min) after it.
    assert renew_at(svid) == NOW - timedelta(minutes=1) + timedelta(hours=12, seconds=30)
    (short,) = ca.issue(csr_der(), WEB, NOW, lifetime=timedelta(minutes=10))
    assert renew_at(short) == NOW + timedelta(minutes=4, seconds=30)


UNKNOWN = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")


def test_a_leaf_with_an_unknown_critical_extension_is_refused(
    ca: CertificateAuthority, bundle: TrustBundle
) -> None:
    svid = leaf((ca.cert, ca.key), extra=[UNKNOWN])
    refused([svid], bundle, "not-an-svid", "critical extensions .* 1.3.6.1.4.1.55555.1")


def test_a_ca_with_unprocessed_name_constraints_is_refused(
    ca: CertificateAuthority, bundle: TrustBundle
) -> None:
    # A verifier that ignored a critical nameConstraints would accept names the CA may not sign.
    key = p256()
    only_other = x509.NameConstraints(
        permitted_subtrees=[x509.UniformResourceIdentifier("other.example")],
        excluded_subtrees=None,
    )
    mid = cert(key, (ca.cert, ca.key), "constrained", ca=True,
               key_usage=usage(cert_sign=True), extra=[only_other])
    refused([leaf((mid, key)), mid], bundle, "bad-chain", "'CN=constrained' has critical")


def test_parse_chain_refuses_what_is_not_der(ca: CertificateAuthority) -> None:
    good = ca.issue(csr_der(), WEB, NOW)[0].public_bytes(serialization.Encoding.DER)
    assert parse_chain([good])[0].public_bytes(serialization.Encoding.DER) == good
    for bad in (b"", b"\x30\x03\x02\x01", good[:-1], b"-----BEGIN CERTIFICATE-----"):
        with pytest.raises(SvidError, match="certificate 1 is not DER X.509") as caught:
            parse_chain([good, bad])
        assert caught.value.reason == "malformed"


def test_a_bundle_needs_a_valid_trust_domain(ca: CertificateAuthority) -> None:
    with pytest.raises(BundleError, match="not lowercase"):
        TrustBundle("Cluster.Local", (ca.root,))


@pytest.mark.filterwarnings("ignore:Parsed a negative serial number")
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_svids_are_refused_with_a_reason_or_still_verify(
    ca: CertificateAuthority, bundle: TrustBundle, data: st.DataObject
) -> None:
    mid = _fuzz_chain(ca)
    ders = [c.public_bytes(serialization.Encoding.DER) for c in mid]
    which = data.draw(st.integers(0, len(ders) - 1))
    der = bytearray(ders[which])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(der) - 1))
        der[at] = data.draw(st.integers(0, 255))
    ders[which] = bytes(der)
    try:
        assert verify_svid(parse_chain(ders), bundle, NOW) == WEB
    except SvidError as e:
        assert e.reason in REASONS


_FUZZ: dict[str, list[x509.Certificate]] = {}


def _fuzz_chain(ca: CertificateAuthority) -> list[x509.Certificate]:
    if "chain" not in _FUZZ:
        _FUZZ["chain"] = ca.intermediate("fuzz", NOW).issue(csr_der(), WEB, NOW)
    return _FUZZ["chain"]
