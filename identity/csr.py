"""Certificate signing requests: what the CA accepts from an agent before signing.

`validate_csr(data, expected)` takes the request as an agent sends it (PEM or DER) and the
SPIFFE ID the CA has already decided the agent may have (see `authz`). It accepts only:
- at most 16 KiB of input, checked before parsing (a P-256 CSR is ~400 bytes, an RSA-4096
  one ~1.7 KiB in PEM, so this bounds the parser's work without refusing a real request);
- a self-signature that verifies, not made with SHA-1 or MD5 (proof of key possession);
- an EC P-256/P-384 key or an RSA key of 2048 to 8192 bits (X.509-SVID leaves are usually
  P-256; other curves, Ed25519, DSA and small RSA keys are refused by name);
- exactly one subjectAltName, a URI equal to `expected`: no DNS, IP or email names, which an
  SVID must not carry and which would let the holder pass as a host;
- no basicConstraints CA:true (the CA never makes an agent a CA, but a request asking for it
  is a sign of misuse and is refused rather than silently ignored).
The CA builds the certificate itself from the ID and the request's public key; nothing else
in the request (subject, other extensions) reaches the certificate.

A refusal is a `CsrError` with a stable `reason` (for flows and metrics) and a message.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from identity.certs import PARSE_ERRORS, WEAK_HASHES
from identity.spiffe import SpiffeId, SpiffeIdError

MAX_CSR_BYTES = 16 * 1024
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192
ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)
REASONS = (
    "too-large",
    "malformed",
    "bad-signature",
    "weak-key",
    "unsupported-key",
    "ca-requested",
    "wrong-identity",
)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class CsrError(ValueError):
    """A refused request: `reason` is one of REASONS, the message says what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _parse(data: bytes) -> x509.CertificateSigningRequest:
    if len(data) > MAX_CSR_BYTES:
        raise CsrError("too-large", f"the request is {len(data)} bytes, over {MAX_CSR_BYTES}")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
        # cryptography 38 decodes fields when first read: read those the checks use, here.
        csr.subject.rfc4514_string()
        list(csr.extensions)
    except PARSE_ERRORS as e:
        raise CsrError("malformed", f"not a certificate signing request ({e})") from None
    return csr


def _check_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    try:
        key = csr.public_key()
    except PARSE_ERRORS as e:  # e.g. an unknown curve
        raise CsrError("unsupported-key", f"the key cannot be read ({e})") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < RSA_MIN_BITS:
            raise CsrError("weak-key", f"RSA-{key.key_size} is under {RSA_MIN_BITS} bits")
        if key.key_size > RSA_MAX_BITS:
            raise CsrError("unsupported-key", f"RSA-{key.key_size} is over {RSA_MAX_BITS} bits")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CsrError("unsupported-key", f"EC curve {key.curve.name}: only P-256 or P-384")
        return key
    raise CsrError("unsupported-key", f"{type(key).__name__}: only EC P-256/P-384 or RSA")


def _check_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        valid = csr.is_signature_valid
        digest = csr.signature_hash_algorithm
    except PARSE_ERRORS as e:
        raise CsrError("bad-signature", f"the signature cannot be checked ({e})") from None
    if not valid:
        raise CsrError("bad-signature", "the self-signature does not verify with its key")
    if digest is not None and digest.name in WEAK_HASHES:
        raise CsrError("bad-signature", f"signed with {digest.name.upper()}, which is refused")


def _check_extensions(csr: x509.CertificateSigningRequest, expected: SpiffeId) -> None:
    exts = csr.extensions
    try:
        constraints = exts.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise CsrError("ca-requested", "the request asks for basicConstraints CA:true")
    except x509.ExtensionNotFound:
        pass
    try:
        names = list(exts.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise CsrError("wrong-identity", f"no subjectAltName; want URI {expected}") from None
    others = [n for n in names if not isinstance(n, x509.UniformResourceIdentifier)]
    if others:
        kinds = sorted({type(n).__name__ for n in others})
        raise CsrError("wrong-identity", f"the SAN has {', '.join(kinds)}; only a URI is allowed")
    if len(names) != 1:
        raise CsrError("wrong-identity", f"{len(names)} URI SANs; want exactly one, {expected}")
    uri = names[0].value
    try:
        asked = SpiffeId.parse(uri)
    except SpiffeIdError as e:
        raise CsrError("wrong-identity", f"the URI SAN {uri!r} is not a SPIFFE ID: {e}") from None
    if asked != expected:
        raise CsrError("wrong-identity", f"the request is for {asked}; want {expected}")


def validate_csr(data: bytes, expected: SpiffeId) -> x509.CertificateSigningRequest:
    """The parsed request when it passes every rule above; CsrError naming the first it breaks."""
    csr = _parse(data)
    _check_key(csr)
    _check_signature(csr)
    _check_extensions(csr, expected)
    return csr
