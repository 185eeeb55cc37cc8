"""Throwaway PKI for client-certificate tests: roots, intermediates, server and client
leaves (valid or expired), generated with ``cryptography`` per test."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Leaf:
    crt: bytes
    key: bytes
    chain: bytes = b""
    """Intermediates to send after the leaf (empty: the leaf only)."""

    def files(self, where: Path, name: str) -> tuple[str, str]:
        """(certificate file with the chain, key file) for ``load_cert_chain`` or curl."""
        crt, key = where / f"{name}.crt", where / f"{name}.key"
        crt.write_bytes(self.crt + self.chain)
        key.write_bytes(self.key)
        return str(crt), str(key)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass
class Authority:
    """A CA (a root, or an intermediate when ``parent`` is set) issuing ECDSA P-256 leaves."""

    cn: str
    parent: Authority | None = None
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        signer = self.parent or self
        self.cert = (
            _builder(_name(self.cn), signer.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(signer.key, hashes.SHA256())
        )

    @property
    def name(self) -> x509.Name:
        return _name(self.cn)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str, *, client: bool = False, expired: bool = False) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            _builder(_name(cn), self.name, key.public_key(), expired=expired)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        cert = builder.sign(self.key, hashes.SHA256())
        chain = self.pem if self.parent is not None else b""
        return Leaf(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key), chain)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any, *,
             expired: bool = False) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    start, end = (
        (now - datetime.timedelta(days=3), now - datetime.timedelta(days=1))
        if expired else (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def tls_secret(name: str, namespace: str, leaf: Leaf) -> str:
    crt = base64.b64encode(leaf.crt).decode()
    key = base64.b64encode(leaf.key).decode()
    return (
        f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"type: kubernetes.io/tls\ndata: {{tls.crt: {crt}, tls.key: {key}}}\n"
    )


def ca_config_map(name: str, namespace: str, pem: bytes | str, key: str = "ca.crt") -> str:
    text = pem.decode() if isinstance(pem, bytes) else pem
    indented = "".join(f"    {line}\n" for line in text.strip().splitlines())
    return (
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: "
        f"{namespace}}}\ndata:\n  {key}: |\n{indented}"
    )
