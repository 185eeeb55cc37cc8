"""Why a tunnel's TLS failed, named as a drop reason of ``bpf/lib/drop.h``.

OpenSSL reports its own verification failures with an X509_V_ERR code (Python 3.11:
``SSLCertVerificationError.verify_code``); the peer's refusal of our certificate arrives as a
TLS alert whose name is in the error's reason (``TLSV1_ALERT_UNKNOWN_CA``,
``SSLV3_ALERT_CERTIFICATE_EXPIRED``). The SPIFFE check that runs after OpenSSL's
(``identity.bundle.verify_svid``) names its own reasons. All three map here, once.
"""

from __future__ import annotations

import ssl

UNKNOWN_CA = "MTLS_UNKNOWN_CA"
CERT_EXPIRED = "MTLS_CERT_EXPIRED"
WRONG_IDENTITY = "MTLS_WRONG_IDENTITY"
HANDSHAKE_FAILED = "MTLS_HANDSHAKE_FAILED"
NOT_LOCAL = "TUNNEL_DESTINATION_NOT_LOCAL"
NO_CERTIFICATE = "TUNNEL_NO_CERTIFICATE"
UPSTREAM_FAILED = "TUNNEL_UPSTREAM_FAILED"
POLICY_DENIED = "POLICY_DENIED"

# X509_V_ERR_* (openssl/x509_vfy.h): the codes that name an untrusted issuer or a date.
_UNKNOWN_CA_CODES = frozenset(
    {
        2,  # UNABLE_TO_GET_ISSUER_CERT
        18,  # DEPTH_ZERO_SELF_SIGNED_CERT
        19,  # SELF_SIGNED_CERT_IN_CHAIN
        20,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
        21,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
        7,  # CERT_SIGNATURE_FAILURE
    }
)
_EXPIRED_CODES = frozenset({9, 10, 13, 14})  # NOT_YET_VALID, HAS_EXPIRED, and their format errors
# Alerts a peer sends when it refuses our certificate (RFC 8446 6.2).
_ALERTS = (
    ("ALERT_UNKNOWN_CA", UNKNOWN_CA),
    ("ALERT_CERTIFICATE_EXPIRED", CERT_EXPIRED),
)
# verify_svid's reasons (identity/bundle.py REASONS).
_SVID_REASONS = {
    "unknown-ca": UNKNOWN_CA,
    "bad-signature": UNKNOWN_CA,
    "expired": CERT_EXPIRED,
    "not-yet-valid": CERT_EXPIRED,
    "wrong-trust-domain": WRONG_IDENTITY,
}


def handshake_reason(exc: BaseException) -> str:
    """The drop reason for a handshake that raised ``exc`` (on either side)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _UNKNOWN_CA_CODES:
            return UNKNOWN_CA
        if code in _EXPIRED_CODES:
            return CERT_EXPIRED
        return HANDSHAKE_FAILED
    if isinstance(exc, ssl.SSLError):
        name = str(exc.reason or "")
        for mark, reason in _ALERTS:
            if mark in name:
                return reason
    return HANDSHAKE_FAILED


def svid_reason(svid_reason: str) -> str:
    """The drop reason for an ``identity.bundle.SvidError`` reason."""
    return _SVID_REASONS.get(svid_reason, HANDSHAKE_FAILED)


def describe(exc: BaseException) -> str:
    """A one-line explanation (OpenSSL's verify message when there is one)."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"TLS: {exc.reason}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
