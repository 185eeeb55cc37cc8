"""TokenRequest (``kubectl create token SA``): a ServiceAccount token the server issues,
bound to the account (its uid) and to an expiry, stored nowhere, as a cluster's bound
tokens are.

A token is ``tulle-sa.<payload>.<mac>``: the payload (namespace, name, uid, expiry,
audiences, an id) in base64url JSON, the mac an HMAC-SHA256 of it under the server's key,
which is derived from the admin token (kept in the state dir), so tokens outlive a restart.
Not a JWT: nothing outside this server reads them.

``spec.boundObjectRef`` binds the token to a Node or a Pod as well (``kubectl create token
--bound-object-kind Node``): the payload names the object and its uid (a Pod's also its
node's name and uid when it is scheduled), the token dies when that object is deleted or
replaced (``auth.py`` checks on every use), and a TokenReview of it reports the binding in
``user.extra`` under Kubernetes' keys (``BINDING_EXTRAS``), the node a node agent's CA
request comes from.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from lab.apiserver.errors import ApiError, invalid

PREFIX = "tulle-sa."
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600  # "may not specify a duration less than 10 minutes"
MAX_SECONDS = 2**32
AUDIENCE = "https://kubernetes.default.svc.cluster.local"
BINDABLE = ("Node", "Pod")  # Kubernetes binds to Secrets too; the lab has no use for it
# The keys a TokenReview's user.extra carries for a bound token, as Kubernetes names them
# (k8s.io/apiserver serviceaccount: PodNameKey ... CredentialIDKey).
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
NODE_NAME = "authentication.kubernetes.io/node-name"
NODE_UID = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
# Finds a stored object: (kind, namespace, name) -> the object or None.
Lookup = Callable[[str, str, str], Mapping[str, Any] | None]


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


def decode(key: bytes | None, token: str, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a token this key issued and that has not expired, whatever its
    audiences; else None. Accepting a token takes ``verify``."""
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
    if not isinstance(claims.get("aud"), list):
        return None
    return claims if claims["exp"] > (time.time() if now is None else now) else None


def verify(
    key: bytes | None, token: str, now: float | None = None, audiences: Iterable[str] = (AUDIENCE,)
) -> dict[str, Any] | None:
    """The claims of a token this key issued for one of ``audiences`` (by default this API
    server: a token minted for another audience is for someone else to accept) and that has
    not expired; else None."""
    claims = decode(key, token, now)
    if claims is None or not set(claims["aud"]) & set(audiences):
        return None
    return claims


def _uid(obj: Mapping[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("uid") or "")


def _binding(ref: Any, namespace: str, lookup: Lookup) -> dict[str, str]:
    """The claims binding a token to ``ref`` (a BoundObjectReference): 422 for a reference
    the server cannot bind, 404 when the object does not exist (or has another uid)."""
    path = "spec.boundObjectRef"
    if not isinstance(ref, dict):
        raise invalid(
            "TokenRequest",
            "",
            [(path, f"Invalid value: {ref!r}: must be an object")],
            "authentication.k8s.io",
        )
    kind, name, uid = ref.get("kind"), ref.get("name"), ref.get("uid") or ""
    problems = []
    if kind not in BINDABLE:
        problems.append(
            (
                f"{path}.kind",
                f"Unsupported value: {kind!r}: supported values: "
                + ", ".join(f'"{k}"' for k in BINDABLE),
            )
        )
    if ref.get("apiVersion") not in (None, "", "v1"):
        problems.append(
            (
                f"{path}.apiVersion",
                f'Unsupported value: {ref.get("apiVersion")!r}: supported values: "v1"',
            )
        )
    if not isinstance(name, str) or not name:
        problems.append((f"{path}.name", "Required value"))
    if not isinstance(uid, str):
        problems.append((f"{path}.uid", f"Invalid value: {uid!r}: must be a string"))
    if problems:
        raise invalid("TokenRequest", "", problems, "authentication.k8s.io")
    scope = "" if kind == "Node" else namespace
    obj = lookup(str(kind), scope, str(name))
    if obj is None or (uid and _uid(obj) != uid):
        plural = "nodes" if kind == "Node" else "pods"
        detail = f" with uid {uid}" if obj is not None else ""
        raise ApiError(404, f'{plural} "{name}"{detail} not found', reason="NotFound")
    bound = {"kind": str(kind), "name": str(name), "uid": _uid(obj)}
    node_name = str(name) if kind == "Node" else str((obj.get("spec") or {}).get("nodeName") or "")
    if kind == "Pod" and node_name:  # a Pod's token names its node, as Kubernetes 1.30+ does
        node = lookup("Node", "", node_name)
        if node is not None:
            bound.update({"node": node_name, "nodeUid": _uid(node)})
    return bound


def binding_alive(claims: Mapping[str, Any], lookup: Lookup) -> bool:
    """Whether the object a token is bound to still exists as the same object (its uid):
    a token bound to a deleted Node, or to a Node recreated under its name, is dead. An
    unbound token is alive."""
    bound = claims.get("bound")
    if bound is None:
        return True
    if not isinstance(bound, dict) or bound.get("kind") not in BINDABLE:
        return False
    scope = "" if bound["kind"] == "Node" else str(claims.get("ns") or "")
    obj = lookup(str(bound["kind"]), scope, str(bound.get("name") or ""))
    return obj is not None and _uid(obj) == bound.get("uid")


def extras(claims: Mapping[str, Any]) -> dict[str, list[str]]:
    """A TokenReview's ``user.extra`` for a token: its id, and its binding (Kubernetes'
    keys: a Node-bound token names the node, a Pod-bound one the pod and its node)."""
    out = {CREDENTIAL_ID: [f"JTI={claims['jti']}"]} if claims.get("jti") else {}
    bound = claims.get("bound")
    if isinstance(bound, dict):
        if bound.get("kind") == "Node":
            out[NODE_NAME], out[NODE_UID] = [str(bound["name"])], [str(bound["uid"])]
        elif bound.get("kind") == "Pod":
            out[POD_NAME], out[POD_UID] = [str(bound["name"])], [str(bound["uid"])]
            if bound.get("node"):
                out[NODE_NAME], out[NODE_UID] = [str(bound["node"])], [str(bound["nodeUid"])]
    return out


def answer(
    key: bytes,
    account: Mapping[str, Any],
    body: Any,
    now: float | None = None,
    lookup: Lookup | None = None,
) -> dict[str, Any]:
    """The TokenRequest response for ``account`` (a stored ServiceAccount); 422 for a spec
    the server cannot honour, 404 for a bound object that does not exist. ``lookup`` finds
    the bound object (none: binding is refused)."""
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
    ref = spec.get("boundObjectRef")
    if ref and lookup is None:
        problems.append(("spec.boundObjectRef", "Forbidden: this server binds no tokens"))
    if problems:
        raise invalid("TokenRequest", name, problems, "authentication.k8s.io")
    meta = account["metadata"]
    bound = _binding(ref, meta.get("namespace", ""), lookup) if ref and lookup else None
    audiences = list(audiences or [AUDIENCE])
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "ns": meta.get("namespace", ""),
        "name": name,
        "uid": meta.get("uid", ""),
        "exp": issued + seconds,
        "aud": audiences,
        "jti": secrets.token_hex(16),
    }
    out_spec: dict[str, Any] = {"audiences": audiences, "expirationSeconds": seconds}
    if bound is not None:
        claims["bound"] = bound
        out_spec["boundObjectRef"] = {
            "kind": bound["kind"],
            "apiVersion": "v1",
            "name": bound["name"],
            "uid": bound["uid"],
        }
    expires = datetime.fromtimestamp(issued + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": meta.get("namespace", "")},
        "spec": out_spec,
        "status": {"token": mint(key, claims), "expirationTimestamp": expires},
    }
