"""TokenReview (``POST /apis/authentication.k8s.io/v1/tokenreviews``): who is this token?
A component that authenticates its own clients by their ServiceAccount tokens (the Tulle
control plane's CA) asks the API server, as a webhook authenticator or Istio's CA does.

The answer has Kubernetes' shape: ``status.authenticated``, ``status.user`` (username, uid,
groups, extra) and ``status.audiences`` when it is, ``status.error`` when it is not. A
token bound to a Node or a Pod (``tokenrequest.py``) carries its binding in
``user.extra`` (``authentication.kubernetes.io/node-name`` ...), and dies with the bound
object. ``spec.audiences`` (default: this API server's) must meet the token's audiences.
Creating a review needs RBAC ``create`` on ``tokenreviews`` (``system:auth-delegator``).
"""

from __future__ import annotations

from typing import Any

from lab.apiserver import auth, tokenrequest
from lab.apiserver.errors import bad_request
from lab.store import Store

GROUP_VERSION = "authentication.k8s.io/v1"


def _audiences(spec: dict[str, Any]) -> tuple[str, ...]:
    asked = spec.get("audiences")
    if asked is None or asked == []:
        return (tokenrequest.AUDIENCE,)
    if not isinstance(asked, list) or not all(isinstance(a, str) and a for a in asked):
        raise bad_request("spec.audiences must be a list of non-empty strings")
    return tuple(asked)


def why_refused(
    store: Store, admin_tokens: frozenset[str], token: str, audiences: tuple[str, ...]
) -> str:
    """Why ``token`` does not authenticate for ``audiences``, in words a log can carry."""
    if not token.startswith(tokenrequest.PREFIX):
        return "invalid bearer token"
    key = tokenrequest.signing_key(admin_tokens)
    claims = tokenrequest.decode(key, token)
    if claims is None:
        return "invalid bearer token: forged, malformed or expired"
    if not set(claims["aud"]) & set(audiences):
        return (
            f"token audiences {claims['aud']} is invalid for the target audiences {list(audiences)}"
        )
    account = store.get("ServiceAccount", str(claims["ns"]), str(claims["name"]))
    if account is None or account["metadata"].get("uid") != claims["uid"]:
        return (
            f"service account {claims['ns']}/{claims['name']} (uid {claims['uid']}) has "
            "been deleted"
        )
    bound = claims.get("bound") or {}
    return (
        f"{bound.get('kind')} {bound.get('name')} (uid {bound.get('uid')}) the token is "
        "bound to has been deleted or replaced"
    )


def review(store: Store, admin_tokens: frozenset[str], body: Any) -> dict[str, Any]:
    """The TokenReview answering ``body``; 400 without ``spec.token``."""
    spec = body.get("spec") if isinstance(body, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise bad_request("token is required for TokenReview in authentication")
    audiences = _audiences(spec)
    out: dict[str, Any] = {
        "kind": "TokenReview",
        "apiVersion": GROUP_VERSION,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
    }
    found = auth.identify(store, admin_tokens, token, audiences)
    if found is None:
        reason = why_refused(store, admin_tokens, token, audiences)
        out["status"] = {"authenticated": False, "user": {}, "error": reason}
        return out
    user: dict[str, Any] = {"username": found.user.name, "groups": list(found.user.groups)}
    if found.uid:
        user["uid"] = found.uid
    if found.extra:
        user["extra"] = {k: list(v) for k, v in found.extra.items()}
    out["status"] = {"authenticated": True, "user": user, "audiences": list(found.audiences)}
    return out
