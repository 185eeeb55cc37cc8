"""The node-local SVID directory: the agent writes it, the waypoint reads it.

Layout (the directory is 0700, every file 0600, each written whole by rename so a reader
never sees half a file; private keys never leave the node):

    <dir>/bundle.pem                 the trust bundle: every root trusted now, PEM, in order
    <dir>/svids/<ns>_<sa>.pem        one identity: its chain (leaf first, then intermediates,
                                     no root), then its PKCS#8 private key

Namespace and ServiceAccount names are DNS labels/subdomains and never hold ``_``, so the
file name reads back unambiguously.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BUNDLE_FILE = "bundle.pem"
SVID_DIR = "svids"
_KEY_MARK = b"-----BEGIN PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class SvidFile:
    namespace: str
    service_account: str
    chain_pem: bytes  # leaf first
    key_pem: bytes  # PKCS#8


def _name(namespace: str, service_account: str) -> str:
    if (
        not namespace
        or not service_account
        or "_" in namespace + service_account
        or "/" in (namespace + service_account)
    ):
        raise ValueError(f"not a namespace/ServiceAccount pair: {namespace!r}/{service_account!r}")
    return f"{namespace}_{service_account}.pem"


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def prepare(directory: Path) -> None:
    """Create the directory tree owner-only (and tighten an existing one)."""
    for path in (directory, directory / SVID_DIR):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def svid_path(directory: Path, namespace: str, service_account: str) -> Path:
    """Where the SVID of ``namespace``/``service_account`` is (or would be) written."""
    return directory / SVID_DIR / _name(namespace, service_account)


def write_svid(directory: Path, svid: SvidFile) -> Path:
    if _KEY_MARK not in svid.key_pem:
        raise ValueError("the key must be PKCS#8 PEM")
    prepare(directory)
    path = svid_path(directory, svid.namespace, svid.service_account)
    _write_private(path, svid.chain_pem.rstrip(b"\n") + b"\n" + svid.key_pem)
    return path


def remove_svid(directory: Path, namespace: str, service_account: str) -> None:
    (directory / SVID_DIR / _name(namespace, service_account)).unlink(missing_ok=True)


def write_bundle(directory: Path, bundle_pem: bytes) -> None:
    prepare(directory)
    _write_private(directory / BUNDLE_FILE, bundle_pem)


def read_bundle(directory: Path) -> bytes | None:
    try:
        return (directory / BUNDLE_FILE).read_bytes()
    except FileNotFoundError:
        return None


def read_svids(directory: Path) -> dict[tuple[str, str], SvidFile]:
    """Every identity held, by (namespace, ServiceAccount). A file that does not parse as the
    layout above (no key, a foreign name) is skipped: a reader must not fail on a stray file."""
    found: dict[tuple[str, str], SvidFile] = {}
    try:
        entries = sorted((directory / SVID_DIR).iterdir())
    except FileNotFoundError:
        return found
    for path in entries:
        stem, suffix = path.stem, path.suffix
        namespace, sep, service_account = stem.partition("_")
        if suffix != ".pem" or not sep or not namespace or not service_account:
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # removed while listing
        chain, mark, key = data.partition(_KEY_MARK)
        if not mark or b"-----BEGIN CERTIFICATE-----" not in chain:
            continue
        found[(namespace, service_account)] = SvidFile(
            namespace, service_account, chain.rstrip(b"\n") + b"\n", mark + key
        )
    return found
