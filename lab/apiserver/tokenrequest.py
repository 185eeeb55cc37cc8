"""TokenRequest (``kubectl create token SA``): a ServiceAccount token the server issues,
bound to the account (its uid) and to an expiry, stored nowhere, as a cluster's bound
tokens are.

A token is ``tulle-sa.<payload>.<mac>``: the payload (namespace, name, uid, expiry,
audiences) in base64url JSON, the mac an HMAC-SHA256 of it under the server's key, which is
derived from the admin token (kept in the state dir), so tokens outlive a restart. Not a
JWT: nothing outside this server reads them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lab.apiserver.errors import invalid

PREFIX = "tulle-sa."
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600  # "may not specify a duration less than 10 minutes"
MAX_SECONDS = 2**32
AUDIENCE = "https://kubernetes.default.svc.cluster.local"


def signing_key(admin_tokens: frozenset[str]) -> bytes | None:
    """The key tokens are signed with; None (no tokens issued or accepted) without an admin
    token to derive it from, since a key derived from nothing could be derived by anyone."""
    if not admin_tokens:
        return None
    seed = "\n".join(sorted(admin_tokens)).encode()
    return hashlib.sha256(b"tulle token request\n" + seed).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def mint(key: bytes, claims: Mapping[str, Any]) -> str:
    payload = _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{PREFIX}{payload}.{mac}"


def verify(key: bytes | None, token: str, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a token this key issued for this API server (its audiences include
    ``AUDIENCE``: a token minted for another audience is for someone else to accept) and
    that has not expired; else None."""
    if key is None or not token.startswith(PREFIX):
        return None
    payload, _, mac = token.removeprefix(PREFIX).partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac.encode(), expected.encode()):  # bytes: mac may be non-ASCII
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int):
        return None
    if AUDIENCE not in (claims.get("aud") or []):
        return None
    return claims if claims["exp"] > (time.time() if now is None else now) else None


def answer(
    key: bytes, account: Mapping[str, Any], body: Any, now: float | None = None
) -> dict[str, Any]:
    """The TokenRequest response for ``account`` (a stored ServiceAccount); 422 for a spec
    the server cannot honour."""
    name = account["metadata"]["name"]
    spec = body.get("spec") if isinstance(body, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    seconds = spec.get("expirationSeconds")
    seconds = DEFAULT_SECONDS if seconds is None else seconds
    problems: list[tuple[str, str]] = []
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        problems.append(("spec.expirationSeconds", f"Invalid value: {seconds!r}: not a number"))
    elif seconds < MIN_SECONDS:
        problems.append(
            (
                "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
            )
        )
    elif seconds > MAX_SECONDS:
        problems.append(
            (
                "spec.expirationSeconds",
                f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds",
            )
        )
    audiences = spec.get("audiences")
    if audiences is not None and (
        not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences)
    ):
        problems.append(
            ("spec.audiences", f"Invalid value: {audiences!r}: must be a list of non-empty strings")
        )
    if spec.get("boundObjectRef"):
        problems.append(
            ("spec.boundObjectRef", "Forbidden: the lab API server does not bind tokens to objects")
        )
    if problems:
        raise invalid("TokenRequest", name, problems, "authentication.k8s.io")
    audiences = list(audiences or [AUDIENCE])
    issued = int(time.time() if now is None else now)
    meta = account["metadata"]
    claims = {
        "ns": meta.get("namespace", ""),
        "name": name,
        "uid": meta.get("uid", ""),
        "exp": issued + seconds,
        "aud": audiences,
    }
    expires = datetime.fromtimestamp(issued + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": meta.get("namespace", "")},
        "spec": {"audiences": audiences, "expirationSeconds": seconds},
        "status": {"token": mint(key, claims), "expirationTimestamp": expires},
    }
