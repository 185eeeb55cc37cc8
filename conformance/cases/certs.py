"""Test PKI for the TLS cases: EC P-256 authorities and leaves, valid from five minutes ago
for a week, as PEM text (what Secrets and ConfigMaps carry). Made at load, never stored."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Authority = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def builder(cn: str, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7)))


def authority(cn: str) -> Authority:
    """A self-signed CA named ``cn``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (builder(cn, name(cn), key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def leaf(cn: str, ca: Authority) -> tuple[str, str]:
    """(certificate, key) PEMs for ``cn``, with ``cn`` as its DNS SAN, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (builder(cn, ca[0].subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(ca[1], hashes.SHA256()))
    return pem(cert), key_pem(key)
