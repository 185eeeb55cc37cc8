"""The CA's root in a Secret and the trust bundle in a ConfigMap, with root rotation.

**Secret** `tulle-system/tulle-ca`, type `kubernetes.io/tls`: `tls.crt` = the signing
certificate, then any intermediates (and the root, or the root in `ca.crt`), `tls.key` = its
unencrypted PEM key. A user provides it (their own root or an intermediate under their
PKI), or the first replica to start generates a root and creates it; a replica that loses
that race (409 AlreadyExists) reads the winner's, so every replica signs under one root.

**ConfigMap** `tulle-system/tulle-trust-bundle`: `trust-domain`, and `roots.pem` = every root
an SVID may chain to now. **Rotation**: when the Secret's root changes (the user replaced
it), new SVIDs are signed under the new one at once, and the bundle holds the old roots as
well until `retire-after` = change + overlap (default the maximum SVID lifetime + 1 h, so
every SVID signed under an old root has expired first); then only the current root. The
retire-after times live in the ConfigMap's annotation `tulle.io/retiring-roots` (JSON: root
SHA-256 -> RFC 3339), so a restarted or second replica keeps the same schedule.
`plan_bundle` is that schedule, pure; `load_ca` and `publish_bundle` do the I/O through a
small `Objects` seam (controlplane.kube in a process, a dict in tests).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from identity.bundle import BundleError, TrustBundle
from identity.ca import CaError, CertificateAuthority
from identity.certs import load_pem_chain, to_pem, utc
from identity.system import SYSTEM_NAMESPACE

NAMESPACE = SYSTEM_NAMESPACE  # the default; --system-namespace sets it per process
SECRET_NAME = "tulle-ca"
CONFIGMAP_NAME = "tulle-trust-bundle"
TLS_TYPE = "kubernetes.io/tls"
RETIRING = "tulle.io/retiring-roots"
ROOT_NAME = "Tulle workload root"
Obj = dict[str, Any]


class Conflict(Exception):
    """The object exists already (create) or changed since it was read (update): 409."""


class Objects(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> Obj | None: ...
    def create(self, obj: Obj) -> Obj: ...  # Conflict on 409
    def update(self, obj: Obj) -> Obj: ...  # Conflict on 409


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _field(data: Mapping[str, Any], key: str) -> bytes | None:
    raw = data.get(key)
    if raw is None:
        return None
    try:
        return base64.b64decode(str(raw), validate=True)
    except binascii.Error:
        raise CaError(f"Secret {NAMESPACE}/{SECRET_NAME} data {key!r} is not base64") from None


def ca_from_secret(secret: Mapping[str, Any]) -> CertificateAuthority:
    """The CA a `kubernetes.io/tls` Secret holds; CaError saying what is wrong with it."""
    where = f"Secret {NAMESPACE}/{SECRET_NAME}"
    if secret.get("type") != TLS_TYPE:
        raise CaError(f"{where} has type {secret.get('type')!r}; want {TLS_TYPE}")
    data = secret.get("data") or {}
    cert, key, root = _field(data, "tls.crt"), _field(data, "tls.key"), _field(data, "ca.crt")
    if not cert or not key:
        raise CaError(f"{where} needs tls.crt and tls.key")
    try:
        certs = load_pem_chain(cert)
    except ValueError as e:
        raise CaError(f"{where} tls.crt: {e}") from None
    if root and certs[-1].issuer != certs[-1].subject:
        cert = cert.rstrip(b"\n") + b"\n" + root  # the chain's root given apart, in ca.crt
    try:
        return CertificateAuthority.from_pem(cert, key)
    except CaError as e:
        raise CaError(f"{where}: {e}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def secret_for(ca: CertificateAuthority, namespace: str = NAMESPACE) -> Obj:
    key = ca.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": TLS_TYPE,
        "metadata": {
            "name": SECRET_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "tulle"},
        },
        "data": {
            "tls.crt": _b64(to_pem([ca.cert, *ca.chain])),
            "tls.key": _b64(key),
            "ca.crt": _b64(to_pem([ca.root])),
        },
    }


def load_ca(api: Objects, now: datetime, namespace: str = NAMESPACE) -> CertificateAuthority:
    """The CA from the Secret; when there is none, a new root stored in it (or, if another
    replica stored one first, that one)."""
    found = api.get("Secret", namespace, SECRET_NAME)
    if found is not None:
        return ca_from_secret(found)
    ca = CertificateAuthority.generate_root(ROOT_NAME, now)
    try:
        api.create(secret_for(ca, namespace))
    except Conflict:
        found = api.get("Secret", namespace, SECRET_NAME)
        if found is None:
            raise CaError(f"Secret {namespace}/{SECRET_NAME} exists and vanished") from None
        return ca_from_secret(found)
    return ca


def plan_bundle(
    published: tuple[x509.Certificate, ...],
    retiring: Mapping[str, datetime],
    current: x509.Certificate,
    now: datetime,
    overlap: timedelta,
) -> tuple[tuple[x509.Certificate, ...], dict[str, datetime]]:
    """The roots to publish and their retire-after times, given what is published now.
    The current root is always in, first, and never retiring; every other published root
    retires `overlap` after it was first seen not current (kept from `retiring` when it
    already has a time), and leaves once that time has passed."""
    now = utc(now)
    ours = fingerprint(current)
    roots = [current]
    schedule: dict[str, datetime] = {}
    for root in published:
        fp = fingerprint(root)
        if fp == ours or root in roots:
            continue
        until = retiring.get(fp, now + overlap)
        if until > now:
            roots.append(root)
            schedule[fp] = until
    return tuple(roots), schedule


def read_configmap(
    cm: Mapping[str, Any] | None,
) -> tuple[tuple[x509.Certificate, ...], dict[str, datetime]]:
    """The roots and retire-after times a ConfigMap holds (none if absent or unreadable:
    it is ours to rewrite, and the Secret is the source of truth for the current root)."""
    if cm is None:
        return (), {}
    data = cm.get("data") or {}
    try:
        roots = tuple(load_pem_chain(str(data.get("roots.pem") or "").encode()))
    except ValueError:
        roots = ()
    raw = ((cm.get("metadata") or {}).get("annotations") or {}).get(RETIRING) or "{}"
    try:
        times = {str(k): utc(datetime.fromisoformat(str(v))) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError, TypeError):
        times = {}
    return roots, times


def configmap_for(
    trust_domain: str,
    roots: tuple[x509.Certificate, ...],
    retiring: Mapping[str, datetime],
    namespace: str = NAMESPACE,
) -> Obj:
    annotation = json.dumps({k: v.isoformat() for k, v in sorted(retiring.items())})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "tulle"},
            "annotations": {RETIRING: annotation},
        },
        "data": {"trust-domain": trust_domain, "roots.pem": to_pem(roots).decode()},
    }


def publish_bundle(
    api: Objects,
    trust_domain: str,
    current: x509.Certificate,
    now: datetime,
    overlap: timedelta,
    namespace: str = NAMESPACE,
    attempts: int = 3,
) -> TrustBundle:
    """Bring the ConfigMap to `plan_bundle`'s answer (create or update; a conflict with
    another replica re-reads and plans again) and return the bundle it holds."""
    for _ in range(attempts):
        live = api.get("ConfigMap", namespace, CONFIGMAP_NAME)
        roots, retiring = plan_bundle(*read_configmap(live), current, now, overlap)
        want = configmap_for(trust_domain, roots, retiring, namespace)
        try:
            if live is None:
                api.create(want)
            elif (
                live.get("data") != want["data"]
                or _annotation(live) != want["metadata"]["annotations"][RETIRING]
            ):
                meta = {
                    **live["metadata"],
                    **{k: want["metadata"][k] for k in ("labels", "annotations")},
                }
                api.update({**want, "metadata": meta})
        except Conflict:
            continue
        try:
            return TrustBundle(trust_domain, roots)
        except BundleError as e:
            raise CaError(f"the trust bundle cannot be built: {e}") from None
    raise CaError(f"ConfigMap {namespace}/{CONFIGMAP_NAME} kept changing under {attempts} tries")


def _annotation(cm: Mapping[str, Any]) -> str:
    return str(((cm.get("metadata") or {}).get("annotations") or {}).get(RETIRING) or "")
