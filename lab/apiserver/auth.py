"""Authentication by bearer token: the lab's admin token, or a ServiceAccount's token, from a
token Secret or issued by a TokenRequest (``tokenrequest.py``).

ServiceAccount tokens live, as in Kubernetes before bound tokens, in Secrets of type
``kubernetes.io/service-account-token`` annotated with the account's name; the server fills in
``data.token`` when such a Secret is created without one (the token controller's job).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from lab.apiserver import tokenrequest
from lab.apiserver.rbac import MASTERS, Attributes, User
from lab.apiserver.routing import Target, query_flag
from lab.store import Store

RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
ADMIN = User("tulle:admin", (MASTERS, "system:authenticated"))
# Who may create Nodes, as NodeRestriction leaves that to kubelets: the lab's kubelet runs in
# the lab controller. Everyone else (admin included) may edit a Node, never create one: its
# pod CIDR decides node identity (model_admission.py). RBAC must allow the create as well.
NODE_REGISTRARS = frozenset({"system:serviceaccount:kube-system:tulle-lab-controller"})


def bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


def _token_of(secret: Mapping[str, Any]) -> str | None:
    raw = (secret.get("data") or {}).get("token")
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def authenticate(store: Store, admin_tokens: frozenset[str], header: str) -> User | None:
    token = bearer(header)
    if token is None:
        return None
    if any(hmac.compare_digest(token, t) for t in admin_tokens):
        return ADMIN
    if token.startswith(tokenrequest.PREFIX):
        claims = tokenrequest.verify(tokenrequest.signing_key(admin_tokens), token)
        if claims is None:
            return None
        account = store.get("ServiceAccount", str(claims["ns"]), str(claims["name"]))
        if account is None or account["metadata"].get("uid") != claims["uid"]:
            return None  # the account is gone (or is another of the same name)
        return service_account_user(str(claims["ns"]), str(claims["name"]))
    for secret in store.list("Secret")[0]:
        if secret.get("type") != SA_TOKEN_TYPE:
            continue
        stored = _token_of(secret)
        if stored is None or not hmac.compare_digest(token, stored):
            continue
        namespace = secret["metadata"].get("namespace", "")
        name = (secret["metadata"].get("annotations") or {}).get(SA_NAME, "")
        if name and store.get("ServiceAccount", namespace, name) is not None:
            return service_account_user(namespace, name)
    return None


def with_token(secret: dict[str, Any]) -> dict[str, Any]:
    """A service-account-token Secret with a fresh token if it came without one."""
    if secret.get("type") != SA_TOKEN_TYPE or (secret.get("data") or {}).get("token"):
        return secret
    token = base64.b64encode(secrets.token_urlsafe(32).encode()).decode()
    return {**secret, "data": {**(secret.get("data") or {}), "token": token}}


def request_attributes(method: str, query: Mapping[str, str], target: Target) -> Attributes:
    """The RBAC verb and resource a request to ``target`` needs."""
    named = target.name is not None
    if method == "GET":
        verb = "watch" if query_flag(query, "watch") else "get" if named else "list"
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return Attributes(
        verb,
        target.resource.group,
        target.resource.plural,
        target.subresource or "",
        target.namespace or "",
        target.name or "",
    )
