"""Builders for identity tests: real CSRs and certificates made with cryptography, including
the malformed ones the CA and the verifier must refuse."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from identity.certs import PrivateKey
from identity.spiffe import SpiffeId, workload_id

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
TD = "cluster.local"
WEB = workload_id(TD, "shop", "web")
DB = workload_id(TD, "shop", "db")


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def uri(spiffe_id: SpiffeId | str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(str(spiffe_id))


def csr_der(
    key: PrivateKey | None = None,
    sans: Sequence[x509.GeneralName] | None = None,
    ca: bool | None = None,
    digest: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A CSR (DER) for `sans` (default: the URI of WEB), signed by `key` (default: new P-256)."""
    key = key or p256()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "workload")])
    )
    names = [uri(WEB)] if sans is None else list(sans)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None).public_bytes(serialization.Encoding.DER)
    return builder.sign(key, digest or hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def csr_pem(key: PrivateKey | None = None, sans: Sequence[x509.GeneralName] | None = None) -> bytes:
    der = csr_der(key, sans)
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def usage(*, sign: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False,
    )


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def cert(
    key: PrivateKey,
    issuer: tuple[x509.Certificate | None, PrivateKey],
    subject: str | x509.Name = "",
    sans: Sequence[x509.GeneralName] = (),
    ca: bool | None = False,
    path_length: int | None = None,
    key_usage: x509.KeyUsage | None = None,
    start: datetime = NOW - timedelta(hours=1),
    end: datetime = NOW + timedelta(hours=1),
    extra: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """A certificate for `key` signed by `issuer` = (its cert, or None for self-signed; key)."""
    issuer_cert, issuer_key = issuer
    if isinstance(subject, x509.Name):
        subject_name = subject
    else:
        subject_name = name(subject) if subject else x509.Name([])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_cert.subject if issuer_cert else subject_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=True)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca, path_length), critical=True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    for extension in extra:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def leaf(
    issuer: tuple[x509.Certificate | None, PrivateKey], spiffe_id: SpiffeId = WEB, **kw: object
) -> x509.Certificate:
    """An SVID-shaped leaf for `spiffe_id` (override any field through `kw`)."""
    fields: dict[str, object] = {"sans": [uri(spiffe_id)], "key_usage": usage(sign=True)}
    fields.update(kw)
    return cert(p256(), issuer, **fields)  # type: ignore[arg-type]


def root(subject: str | x509.Name = "root", **kw: object) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed CA and its key."""
    key = p256()
    fields: dict[str, object] = {"ca": True, "key_usage": usage(cert_sign=True)}
    fields.update(kw)
    return cert(key, (None, key), subject, **fields), key  # type: ignore[arg-type]


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
