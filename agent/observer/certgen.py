"""Certificates for relay-to-agent mTLS (`tulle certs relay`), as Cilium's certgen makes
Hubble's: one CA, the agents' shared server certificate and the relay's client certificate.

    pki = generate(cluster="default", days=365)
    print(secrets_yaml(pki, "tulle-system"))   # kubectl apply -f -

EC P-256 keys. The agents' certificate names ``*.<cluster>.observer.tulle.io`` with the
serverAuth usage only, the relay's ``relay.<cluster>.observer.tulle.io`` with clientAuth
only (agent.observer.tls). cert-manager can issue the same pair instead: a CA Issuer and two
Certificates with those names and usages, into the Secrets named here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.observer.tls import DEFAULT_CLUSTER, DOMAIN, server_wildcard

AGENT_SECRET = "tulle-observer-server-certs"  # mounted by DaemonSet tulle-agent
RELAY_SECRET = "tulle-relay-client-certs"  # mounted by Deployment tulle-relay
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Pair:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class Authority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class RelayPki:
    ca_pem: bytes
    agent: Pair
    relay: Pair


def relay_name(cluster: str = DEFAULT_CLUSTER) -> str:
    return f"relay.{(cluster or DEFAULT_CLUSTER).replace('.', '-')}.{DOMAIN}"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # cryptography 38: naive


def new_ca(common_name: str = "tulle observer CA", *, days: int = 3650,
           not_before: datetime.datetime | None = None) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + days * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def issue(ca: Authority, dns_name: str, *, client: bool, days: int = 365,
          not_before: datetime.datetime | None = None) -> Pair:
    """A leaf for `dns_name`: clientAuth when `client`, else serverAuth (never both)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(minutes=5)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca.cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + days * DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def generate(cluster: str = DEFAULT_CLUSTER, days: int = 365) -> RelayPki:
    if days < 1:
        raise ValueError(f"certificate lifetime must be at least 1 day, got {days}")
    ca = new_ca(f"tulle observer CA ({cluster or DEFAULT_CLUSTER})", days=max(days, 3650))
    return RelayPki(
        ca.cert_pem,
        agent=issue(ca, server_wildcard(cluster), client=False, days=days),
        relay=issue(ca, relay_name(cluster), client=True, days=days),
    )


def _secret(name: str, namespace: str, pair: Pair, ca_pem: bytes) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "tulle"}},
        "stringData": {"tls.crt": pair.cert_pem.decode(), "tls.key": pair.key_pem.decode(),
                       "ca.crt": ca_pem.decode()},
    }


def secrets_yaml(pki: RelayPki, namespace: str) -> str:
    """The two Secrets; each ``ca.crt`` is the CA that verifies the other side."""
    return yaml.safe_dump_all([
        _secret(AGENT_SECRET, namespace, pki.agent, pki.ca_pem),
        _secret(RELAY_SECRET, namespace, pki.relay, pki.ca_pem),
    ], sort_keys=False)
