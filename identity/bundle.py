"""The trust bundle and X.509-SVID verification (spiffe/standards X509-SVID.md, section 5).

A `TrustBundle` is a trust domain's set of root certificates, PEM in and out as the
ConfigMap carries it. Root rotation keeps an overlap: `with_root(new)` trusts both roots
while SVIDs signed under the old one are still held, and `without(old)` drops it once every
holder has renewed under the new one (after at least one SVID lifetime).

`parse_chain(ders)` loads a chain as a handshake presents it (`malformed` if a certificate
is not DER X.509). `verify_svid(chain, bundle, now)` checks a presented chain (leaf first,
then intermediates; the root may be appended) and returns the leaf's SPIFFE ID, or raises
`SvidError` with a stable reason:
- `malformed`: a certificate has a field that cannot be decoded;
- `not-an-svid`: the leaf has no or several URI SANs, a URI that is not a SPIFFE ID, is a CA,
  has keyCertSign/cRLSign, or lacks digitalSignature;
- `wrong-trust-domain`: the ID is not in the bundle's trust domain;
- `bad-chain`: an issuer is not a CA, its name is not the child's issuer, pathLen is
  exceeded, the chain is over MAX_CHAIN certificates, or a CA has a critical extension
  this verifier does not process (a leaf with one is `not-an-svid`);
- `bad-signature`: a certificate's signature does not verify with its issuer's key;
- `unknown-ca`: the chain does not end under a root of the bundle;
- `expired` / `not-yet-valid`: some certificate on the path is outside its validity at `now`.
Checks run in that order, so a forged or foreign chain is named as such before its dates.
The path is the presented one, not searched: each certificate's issuer is the next one
presented, and the last is either a bundle root or signed by one.

`renew_at(cert)` is half of the certificate's life after notBefore (issue 11's schedule).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from identity.certs import (
    PARSE_ERRORS,
    basic_constraints,
    ca_problem,
    key_usage,
    load_pem_chain,
    not_after,
    not_before,
    parse_problem,
    signature_problem,
    to_pem,
    utc,
)
from identity.spiffe import SpiffeId, SpiffeIdError

MAX_CHAIN = 8  # leaf + intermediates; real meshes use 1-3
# What this verifier processes; a certificate with any other critical extension (say,
# nameConstraints) is refused, as RFC 5280 4.2 requires of a verifier that does not know it.
KNOWN_CRITICAL = frozenset({
    ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
})
REASONS = (
    "malformed",
    "not-an-svid",
    "wrong-trust-domain",
    "bad-chain",
    "bad-signature",
    "unknown-ca",
    "expired",
    "not-yet-valid",
)


class SvidError(ValueError):
    """A refused SVID: `reason` is one of REASONS, the message says what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class BundleError(ValueError):
    """A bundle that cannot be built: no root, or a root that is not a self-signed CA."""


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"


@dataclass(frozen=True)
class TrustBundle:
    """The roots trusted for `trust_domain`, without duplicates, in the order added."""

    trust_domain: str
    roots: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        try:
            SpiffeId(self.trust_domain)
        except SpiffeIdError as e:
            raise BundleError(str(e)) from None
        if not self.roots:
            raise BundleError("a trust bundle needs at least one root")
        for root in self.roots:
            problem = parse_problem(root) or ca_problem(root)
            if problem is None and (root.issuer != root.subject or signature_problem(root, root)):
                problem = "is not self-signed"
            if problem:
                raise BundleError(f"the root {_name(root)!r} {problem}")
        unique = tuple(dict.fromkeys(self.roots))
        if unique != self.roots:
            object.__setattr__(self, "roots", unique)

    @classmethod
    def from_pem(cls, trust_domain: str, data: bytes) -> TrustBundle:
        try:
            return cls(trust_domain, tuple(load_pem_chain(data)))
        except ValueError as e:
            if isinstance(e, BundleError):
                raise
            raise BundleError(f"the bundle is not PEM certificates ({e})") from None

    def to_pem(self) -> bytes:
        return to_pem(self.roots)

    def with_root(self, root: x509.Certificate) -> TrustBundle:
        """This bundle trusting `root` too (the start of a rotation's overlap)."""
        return TrustBundle(self.trust_domain, (*self.roots, root))

    def without(self, root: x509.Certificate) -> TrustBundle:
        """This bundle no longer trusting `root` (the end of the overlap)."""
        if root not in self.roots:
            raise BundleError(f"the root {_name(root)!r} is not in the bundle")
        return TrustBundle(self.trust_domain, tuple(r for r in self.roots if r != root))


def parse_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Certificates from DER (as a TLS handshake presents them); `malformed` if one is not."""
    certs = []
    for i, der in enumerate(ders):
        try:
            cert = x509.load_der_x509_certificate(der)
        except PARSE_ERRORS as e:
            raise SvidError("malformed", f"certificate {i} is not DER X.509 ({e})") from None
        certs.append(cert)
    _check_decodable(certs)
    return certs


def _check_decodable(chain: Sequence[x509.Certificate]) -> None:
    for i, cert in enumerate(chain):
        problem = parse_problem(cert)
        if problem:
            raise SvidError("malformed", f"certificate {i} {problem}")


def _extension_problem(cert: x509.Certificate) -> str | None:
    """Why `cert`'s extensions cannot be relied on, or None."""
    extensions = list(cert.extensions)  # decodable: _check_decodable ran first
    unknown = [e.oid.dotted_string for e in extensions
               if e.critical and e.oid not in KNOWN_CRITICAL]
    if unknown:
        return f"has critical extensions this verifier does not process: {', '.join(unknown)}"
    return None


def _leaf_identity(leaf: x509.Certificate) -> SpiffeId:
    problem = _extension_problem(leaf)
    if problem:
        raise SvidError("not-an-svid", f"the leaf {problem}")
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if len(uris) != 1:
        raise SvidError("not-an-svid", f"the leaf has {len(uris)} URI SANs; an SVID has one")
    try:
        spiffe_id = SpiffeId.parse(uris[0])
    except SpiffeIdError as e:
        raise SvidError("not-an-svid", f"the leaf's URI SAN is not a SPIFFE ID: {e}") from None
    constraints = basic_constraints(leaf)
    if constraints is not None and constraints.ca:
        raise SvidError("not-an-svid", "the leaf is a CA (basicConstraints CA:true)")
    usage = key_usage(leaf)
    if usage is None or not usage.digital_signature:
        raise SvidError("not-an-svid", "the leaf's keyUsage lacks digitalSignature")
    if usage.key_cert_sign or usage.crl_sign:
        raise SvidError("not-an-svid", "the leaf's keyUsage has keyCertSign or cRLSign")
    return spiffe_id


def _check_link(child: x509.Certificate, issuer: x509.Certificate, below: int) -> None:
    """`issuer` signed `child`, may sign CAs, and allows `below` intermediates under it."""
    problem = _extension_problem(issuer) or ca_problem(issuer)
    if problem:
        raise SvidError("bad-chain", f"{_name(child)!r}'s issuer {_name(issuer)!r} {problem}")
    if child.issuer != issuer.subject:
        raise SvidError(
            "bad-chain", f"{_name(child)!r} names issuer {child.issuer.rfc4514_string()!r}, "
            f"but the next certificate is {_name(issuer)!r}"
        )
    constraints = basic_constraints(issuer)
    limit = constraints.path_length if constraints else None
    if limit is not None and below > limit:
        raise SvidError(
            "bad-chain", f"{_name(issuer)!r} allows {limit} intermediate CAs below it; "
            f"the chain has {below}"
        )
    problem = signature_problem(child, issuer)
    if problem:
        raise SvidError("bad-signature", f"{_name(child)!r} {problem}")


def _anchor(
    top: x509.Certificate, roots: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    """The bundle root that signed `top`, or None."""
    for root in roots:
        if top.issuer == root.subject and signature_problem(top, root) is None:
            return root
    return None


def verify_svid(
    chain: Sequence[x509.Certificate], bundle: TrustBundle, now: datetime
) -> SpiffeId:
    """The leaf's SPIFFE ID if `chain` is a valid X.509-SVID under `bundle` at `now`."""
    if not chain:
        raise SvidError("not-an-svid", "no certificate presented")
    if len(chain) > MAX_CHAIN:
        raise SvidError("bad-chain", f"{len(chain)} certificates, over {MAX_CHAIN}")
    _check_decodable(chain)
    spiffe_id = _leaf_identity(chain[0])
    if spiffe_id.trust_domain != bundle.trust_domain:
        raise SvidError(
            "wrong-trust-domain", f"{spiffe_id} is not in trust domain {bundle.trust_domain!r}"
        )
    path = [chain[0]]
    for issuer in chain[1:]:
        if path[-1] in bundle.roots:
            break  # reached a trusted root; anything after it is ignored
        _check_link(path[-1], issuer, below=len(path) - 1)
        path.append(issuer)
    if path[-1] not in bundle.roots:
        root = _anchor(path[-1], bundle.roots)
        if root is None:
            raise SvidError(
                "unknown-ca", f"{_name(path[-1])!r} is not signed by a root of the bundle "
                f"for {bundle.trust_domain!r}"
            )
        _check_link(path[-1], root, below=len(path) - 1)
        path.append(root)
    moment = utc(now)
    for cert in path:
        if moment > not_after(cert):
            raise SvidError("expired", f"{_name(cert)!r} expired at {not_after(cert).isoformat()}")
        if moment < not_before(cert):
            raise SvidError(
                "not-yet-valid", f"{_name(cert)!r} is valid from {not_before(cert).isoformat()}"
            )
    return spiffe_id


def renew_at(cert: x509.Certificate) -> datetime:
    """When to renew `cert`: half of its life after notBefore."""
    start = not_before(cert)
    return start + (not_after(cert) - start) / 2
