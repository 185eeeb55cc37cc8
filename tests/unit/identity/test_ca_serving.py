"""The CA's serving certificate for its own gRPC endpoint: names, usages, chain, refusals."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from identity.bundle import SvidError, TrustBundle, verify_svid
from identity.ca import CaError, CertificateAuthority
from identity.certs import not_after, signature_problem
from tests.unit.identity.helpers import NOW, TD, p256

HOST = "tulle-controlplane.tulle-system.svc"


def test_serving_certificate_names_usages_and_chain() -> None:
    root = CertificateAuthority.generate_root("root", NOW - timedelta(days=1))
    mid = root.intermediate("mid", NOW - timedelta(hours=1))
    key = p256()
    ip = ipaddress.IPv4Address("10.240.0.1")
    chain = mid.issue_serving(key.public_key(), [HOST], [ip], NOW, timedelta(days=2))
    leaf = chain[0]
    assert chain[1:] == [mid.cert]  # intermediates follow, the root stays in the bundle
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOST]
    assert sans.get_values_for_type(x509.IPAddress) == [ip]
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == []
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert not_after(leaf) == NOW + timedelta(days=2)
    assert signature_problem(leaf, mid.cert) is None
    # It is no SVID: a peer presenting it as a workload is refused.
    with pytest.raises(SvidError) as err:
        verify_svid(chain, TrustBundle(TD, (root.root,)), NOW)
    assert err.value.reason == "not-an-svid"


def test_serving_certificate_refusals() -> None:
    ca = CertificateAuthority.generate_root("root", NOW - timedelta(days=1))
    with pytest.raises(CaError, match="at least one DNS name"):
        ca.issue_serving(p256().public_key(), [], [], NOW)
    with pytest.raises(CaError, match="cannot serve TLS"):
        ca.issue_serving(dsa.generate_private_key(2048).public_key(), [HOST], [], NOW)
    with pytest.raises(CaError, match="not valid before"):
        ca.issue_serving(p256().public_key(), [HOST], [], NOW - timedelta(days=2))
    with pytest.raises(CaError, match="under the minimum"):
        ca.issue_serving(p256().public_key(), [HOST], [], NOW, timedelta(seconds=5))
