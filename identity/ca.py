"""The certificate authority's decisions: what root it holds and what an X.509-SVID it signs
looks like (spiffe/standards X509-SVID.md).

A `CertificateAuthority` holds a signing certificate and key plus the chain from it to a
self-signed root (empty when the signer is the root). It comes from
- `generate_root(name, now)`: a self-signed EC P-256 root (default lifetime 10 years), or
- `from_pem(cert_pem, key_pem)`: what a user's Secret holds in tls.crt/tls.key: the signing
  cert first, then any intermediates and the root. It refuses a signer that is not a CA, a
  key that does not match it, and a chain whose links do not sign each other, do not end
  at a self-signed root, or break a pathLen. A CA with no keyUsage is accepted (RFC 5280
  allows it, and `openssl req -x509` makes one); one whose keyUsage lacks keyCertSign is not.
`intermediate(name, now)` makes a CA signed by this one (tests and multi-level setups).
`issue_serving(public_key, dns_names, ips, now)` signs a TLS server certificate for the CA's
own service (the control plane's gRPC endpoint): DNS/IP SANs, EKU serverAuth only, no URI
SAN (it is no workload identity), chain leaf first without the root like an SVID's.

`issue(csr, spiffe_id, now)` validates the request (`csr.validate_csr`) and returns the SVID
chain, leaf first, without the root (peers hold it in the trust bundle). The leaf has
- exactly one URI SAN, the ID (critical, since the subject is empty, RFC 5280 4.2.1.6);
- basicConstraints CA:false and keyUsage digitalSignature, both critical; EKU serverAuth and
  clientAuth (the same SVID serves both ends of a tunnel);
- a random 128-bit serial (kept positive, as RFC 5280 requires);
- notBefore 1 minute before `now`, so peers whose clocks lag a little accept it at once;
- notAfter `now + lifetime` (default 24 h), capped by the notAfter of every CA in the chain,
  so no leaf outlives its issuer. Lifetimes under `min_lifetime` (default 1 minute) are
  refused: renewal at half-life would then outrun any realistic round trip to the CA. An
  expired (or not yet valid) CA issues nothing.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CERTIFICATE_PUBLIC_KEY_TYPES
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from identity.certs import (
    PrivateKey,
    basic_constraints,
    ca_problem,
    load_pem_chain,
    not_after,
    not_before,
    public_bytes,
    signature_problem,
    signing_hash,
    utc,
)
from identity.csr import validate_csr
from identity.spiffe import SpiffeId

CLOCK_SKEW = timedelta(minutes=1)
DEFAULT_LIFETIME = timedelta(hours=24)
MIN_LIFETIME = timedelta(minutes=1)
DEFAULT_ROOT_LIFETIME = timedelta(days=3650)
DEFAULT_INTERMEDIATE_LIFETIME = timedelta(days=365)
DEFAULT_SERVING_LIFETIME = timedelta(days=30)


class CaError(ValueError):
    """A CA that cannot be built from what was given, or a request it cannot serve."""


def _serial() -> int:
    # 128 random bits (17 DER octets at most, under RFC 5280's 20); a serial must be positive.
    return secrets.randbits(128) or 1


def _ca_name(name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tulle"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    start: datetime,
    end: datetime,
    path_length: int | None,
) -> x509.CertificateBuilder:
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def _check_chain(certs: list[x509.Certificate]) -> None:
    """Each cert is a CA signed by the next, and the last is a self-signed root."""
    for cert in certs:
        problem = ca_problem(cert)
        if problem:
            raise CaError(f"the certificate {cert.subject.rfc4514_string()!r} {problem}")
    for child, parent in zip(certs, certs[1:], strict=False):
        problem = signature_problem(child, parent)
        if child.issuer != parent.subject or problem:
            raise CaError(
                f"{child.subject.rfc4514_string()!r} is not signed by the next certificate "
                f"{parent.subject.rfc4514_string()!r} ({problem or 'issuer name differs'})"
            )
    root = certs[-1]
    if root.issuer != root.subject or signature_problem(root, root):
        raise CaError(
            f"the chain ends at {root.subject.rfc4514_string()!r}, which is not a self-signed "
            "root: append the intermediates and the root to the certificate"
        )
    _check_path_room(certs, 0)


def _check_path_room(certs: list[x509.Certificate], extra: int) -> None:
    """Every CA's pathLen allows the intermediates below it, plus `extra` new ones."""
    for below, cert in enumerate(certs):
        constraints = basic_constraints(cert)
        limit = constraints.path_length if constraints else None
        if limit is not None and limit < below + extra:
            raise CaError(
                f"{cert.subject.rfc4514_string()!r} has pathLen {limit}: it allows no "
                f"{below + extra} intermediate CAs below it"
            )


@dataclass(frozen=True)
class CertificateAuthority:
    """A signer: `cert` and its `key`, and `chain` = the certs above `cert` up to the root."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...] = ()
    min_lifetime: timedelta = MIN_LIFETIME

    def __post_init__(self) -> None:
        if public_bytes(self.key.public_key()) != public_bytes(self.cert.public_key()):
            raise CaError("the private key does not match the CA certificate")
        _check_chain([self.cert, *self.chain])

    @classmethod
    def generate_root(
        cls, name: str, now: datetime, lifetime: timedelta = DEFAULT_ROOT_LIFETIME
    ) -> CertificateAuthority:
        """A new self-signed EC P-256 root whose subject is CN=`name`, O=Tulle."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _ca_name(name)
        start = utc(now) - CLOCK_SKEW
        builder = _ca_builder(subject, subject, key, start, utc(now) + lifetime, None)
        cert = builder.sign(key, signing_hash(key))
        return cls(cert, key)

    @classmethod
    def from_pem(
        cls, cert_pem: bytes, key_pem: bytes, min_lifetime: timedelta = MIN_LIFETIME
    ) -> CertificateAuthority:
        """A CA from a Secret's tls.crt (signer, then intermediates, then root) and tls.key."""
        try:
            certs = load_pem_chain(cert_pem)
        except ValueError as e:
            raise CaError(f"tls.crt: {e}") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as e:
            raise CaError(f"tls.key is not an unencrypted PEM private key ({e})") from None
        if not isinstance(
            key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
        ):
            raise CaError(f"tls.key is a {type(key).__name__}: only EC, RSA or Ed25519")
        return cls(certs[0], key, tuple(certs[1:]), min_lifetime)

    @property
    def root(self) -> x509.Certificate:
        return self.chain[-1] if self.chain else self.cert

    def _latest_not_after(self) -> datetime:
        return min(not_after(c) for c in (self.cert, *self.chain))

    def _window(self, now: datetime, lifetime: timedelta) -> tuple[datetime, datetime]:
        if lifetime < self.min_lifetime:
            raise CaError(f"a lifetime of {lifetime} is under the minimum {self.min_lifetime}")
        now = utc(now)
        if now < not_before(self.cert):
            raise CaError(f"the CA is not valid before {not_before(self.cert).isoformat()}")
        end = min(now + lifetime, self._latest_not_after())
        if end <= now:
            raise CaError(f"the CA chain expired at {self._latest_not_after().isoformat()}")
        return now - CLOCK_SKEW, end

    def intermediate(
        self,
        name: str,
        now: datetime,
        lifetime: timedelta = DEFAULT_INTERMEDIATE_LIFETIME,
        path_length: int | None = 0,
    ) -> CertificateAuthority:
        """A new EC P-256 intermediate CA signed by this one (CN=`name`, O=Tulle)."""
        _check_path_room([self.cert, *self.chain], 1)
        start, end = self._window(now, lifetime)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _ca_name(name)
        builder = _ca_builder(subject, self.cert.subject, key, start, end, path_length)
        builder = builder.add_extension(self._authority_key_id(), critical=False)
        cert = builder.sign(self.key, signing_hash(self.key))
        return CertificateAuthority(cert, key, (self.cert, *self.chain), self.min_lifetime)

    def _authority_key_id(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())

    def issue(
        self,
        csr: bytes,
        spiffe_id: SpiffeId,
        now: datetime,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> list[x509.Certificate]:
        """The X.509-SVID chain for `spiffe_id`, leaf first; CsrError or CaError if refused."""
        request = validate_csr(csr, spiffe_id)
        start, end = self._window(now, lifetime)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(request.public_key())
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(str(spiffe_id))]),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(self._authority_key_id(), critical=False)
            .sign(self.key, signing_hash(self.key))
        )
        return [leaf, self.cert, *self.chain[:-1]] if self.chain else [leaf]

    def issue_serving(
        self,
        public_key: CERTIFICATE_PUBLIC_KEY_TYPES,
        dns_names: Sequence[str],
        ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
        now: datetime | None = None,
        lifetime: timedelta = DEFAULT_SERVING_LIFETIME,
    ) -> list[x509.Certificate]:
        """A TLS server certificate for `public_key` naming `dns_names` and `ips`, leaf
        first, then the intermediates (no root); CaError without a name or if the CA cannot
        sign now. CN is the first DNS name (some clients still log it)."""
        if not dns_names and not ips:
            raise CaError("a serving certificate needs at least one DNS name or IP address")
        if not isinstance(
            public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)
        ):
            raise CaError(f"a {type(public_key).__name__} cannot serve TLS here")
        start, end = self._window(now if now is not None else datetime.now(UTC), lifetime)
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ip) for ip in ips]
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])] if dns_names else []
        )
        leaf = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(_serial())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=not dns_names)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(self._authority_key_id(), critical=False)
            .sign(self.key, signing_hash(self.key))
        )
        return [leaf, self.cert, *self.chain[:-1]] if self.chain else [leaf]
