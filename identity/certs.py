"""X.509 helpers shared by the CA and the verifier: PEM in/out, validity times as aware UTC
datetimes, CA-ness, and one signature check.

`cryptography` here is 38 (Debian): it has no `x509.verification` (42+) and gives validity
times as naive UTC datetimes, so chain checks are written with `public_key().verify` and
every time this package compares is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

PEM_CERT_MARKER = b"-----BEGIN CERTIFICATE-----"
# SHA-1 and MD5 signatures are forgeable in practice; nothing this package signs uses them.
WEAK_HASHES = ("md5", "sha1")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken as UTC (as cryptography 38's)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def not_before(cert: x509.Certificate) -> datetime:
    return utc(cert.not_valid_before)


def not_after(cert: x509.Certificate) -> datetime:
    return utc(cert.not_valid_after)


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle, in order; ValueError when there is none or one is bad."""
    blocks = data.split(PEM_CERT_MARKER)[1:]
    if not blocks:
        raise ValueError("no PEM certificate in the input")
    return [x509.load_pem_x509_certificate(PEM_CERT_MARKER + block) for block in blocks]


def to_pem(certs: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


# What cryptography 38 raises from lazily parsed fields of hostile DER.
PARSE_ERRORS = (
    ValueError, KeyError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
    x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
)


def parse_problem(cert: x509.Certificate) -> str | None:
    """Why some field of `cert` cannot be decoded, or None. cryptography 38 decodes names,
    keys, times and extensions only when first read, so a certificate that loaded may still
    fail later: read every field a check uses here, once, before any check."""
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.public_key()
        cert.not_valid_before, cert.not_valid_after  # noqa: B018
        cert.signature_hash_algorithm  # noqa: B018
        list(cert.extensions)
    except PARSE_ERRORS as e:
        return f"cannot be decoded ({type(e).__name__}: {e})"
    return None


def basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def ca_problem(cert: x509.Certificate) -> str | None:
    """Why `cert` may not sign certificates, or None when it may (RFC 5280 4.2.1.3, 4.2.1.9)."""
    constraints = basic_constraints(cert)
    if constraints is None or not constraints.ca:
        return "is not a CA (basicConstraints CA:true missing)"
    usage = key_usage(cert)
    if usage is not None and not usage.key_cert_sign:
        return "is a CA whose keyUsage lacks keyCertSign"
    return None


def public_bytes(key: object) -> bytes:
    """A public key's SubjectPublicKeyInfo DER, for comparing keys."""
    assert hasattr(key, "public_bytes")
    spki: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return spki


def signature_problem(cert: x509.Certificate, issuer: x509.Certificate) -> str | None:
    """Why `issuer`'s key did not sign `cert`, or None when it did."""
    digest = cert.signature_hash_algorithm
    if digest is not None and digest.name in WEAK_HASHES:
        return f"is signed with {digest.name.upper()}, which is refused"
    key = issuer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey) and digest is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), digest)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)) and digest is None:
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            oid = cert.signature_algorithm_oid.dotted_string
            return f"has a signature (algorithm {oid}) its issuer's key type cannot make"
    except InvalidSignature:
        return "has a signature the issuer's key does not verify"
    except ValueError as err:  # e.g. an RSA-PSS signature or a mismatched digest
        return f"has a signature that cannot be checked ({err})"
    return None


def signing_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """The digest to sign with: SHA-384 for P-384 and up, SHA-256 otherwise, none for EdDSA."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()
