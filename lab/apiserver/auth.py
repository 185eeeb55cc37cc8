"""Authentication by bearer token: the lab's admin token, or a ServiceAccount's token, from a
token Secret or issued by a TokenRequest (``tokenrequest.py``).

ServiceAccount tokens live, as in Kubernetes before bound tokens, in Secrets of type
``kubernetes.io/service-account-token`` annotated with the account's name; the server fills in
``data.token`` when such a Secret is created without one and binds it to the account's uid
(the token controller's jobs), so a token outlives neither its account nor a recreation of
the account under the same name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.apiserver import tokenrequest
from lab.apiserver.rbac import MASTERS, Attributes, User
from lab.apiserver.routing import Target, query_flag
from lab.store import Expired, Store

RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"
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


def _same(a: str, b: str) -> bool:
    """Constant-time equality for any text (``hmac.compare_digest`` raises on non-ASCII str,
    and a header or a tenant's Secret may hold anything)."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Identity:
    """Who a token is, as a TokenReview reports it: the user, its uid (a ServiceAccount's),
    the extra (a bound token's binding) and the audiences the token was accepted for."""

    user: User
    uid: str = ""
    extra: Mapping[str, list[str]] = field(default_factory=dict)
    audiences: tuple[str, ...] = (tokenrequest.AUDIENCE,)


def store_lookup(store: Store) -> tokenrequest.Lookup:
    return lambda kind, namespace, name: store.get(kind, namespace, name)


def identify(
    store: Store,
    admin_tokens: frozenset[str],
    token: str,
    audiences: tuple[str, ...] = (tokenrequest.AUDIENCE,),
) -> Identity | None:
    """The identity of ``token`` for one of ``audiences``, or None. A TokenRequest token
    must be alive: its account, and the Node or Pod it is bound to, still exist as the
    same objects (uids). Admin and Secret tokens are for this API server only."""
    if token.startswith(tokenrequest.PREFIX):
        key = tokenrequest.signing_key(admin_tokens)
        claims = tokenrequest.verify(key, token, audiences=audiences)
        if claims is None:
            return None
        account = store.get("ServiceAccount", str(claims["ns"]), str(claims["name"]))
        if account is None or account["metadata"].get("uid") != claims["uid"]:
            return None  # the account is gone (or is another of the same name)
        if not tokenrequest.binding_alive(claims, store_lookup(store)):
            return None  # its Node or Pod is gone (or was replaced)
        held = tuple(a for a in audiences if a in claims["aud"])
        user = service_account_user(str(claims["ns"]), str(claims["name"]))
        return Identity(user, str(claims["uid"]), tokenrequest.extras(claims), held)
    if tokenrequest.AUDIENCE not in audiences:
        return None
    if any(_same(token, t) for t in admin_tokens):
        return Identity(ADMIN)
    for namespace, name in _candidates(store, token):
        secret = store.get("Secret", namespace, name)  # as it is now, not as indexed
        if secret is None or secret.get("type") != SA_TOKEN_TYPE:
            continue
        stored = _token_of(secret)
        if stored is None or not _same(token, stored):
            continue
        namespace = secret["metadata"].get("namespace", "")
        annotations = secret["metadata"].get("annotations") or {}
        account = _account(store, namespace, annotations)
        if account is not None and account["metadata"].get("uid") == annotations.get(SA_UID):
            user = service_account_user(namespace, annotations[SA_NAME])
            return Identity(user, str(annotations[SA_UID]))
    return None


def authenticate(store: Store, admin_tokens: frozenset[str], header: str) -> User | None:
    token = bearer(header)
    if token is None:
        return None
    found = identify(store, admin_tokens, token)
    return found.user if found is not None else None


@dataclass
class _TokenIndex:
    """Token Secrets by the SHA-256 of their token, as of ``revision``."""

    revision: int = -1
    secrets: dict[bytes, list[tuple[str, str]]] = field(default_factory=dict)


_indexes: weakref.WeakKeyDictionary[Store, _TokenIndex] = weakref.WeakKeyDictionary()
_index_lock = threading.Lock()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _candidates(store: Store, token: str) -> list[tuple[str, str]]:
    """The (namespace, name) of the token Secrets that may hold ``token``. Scanning every
    Secret per request let any client, a wrong token sufficing, make the server decode all
    of them (170 ms a request at 5,000); the index is rebuilt only when Secrets changed."""
    with _index_lock:
        index = _indexes.setdefault(store, _TokenIndex())
        head = store.revision()
        if index.revision != head:
            try:
                stale = index.revision < 0 or bool(
                    store.events_since(index.revision, kinds=("Secret",), limit=1)
                )
            except Expired:
                stale = True
            if stale:
                items, head = store.list("Secret")
                index.secrets = {}
                for secret in items:
                    stored = _token_of(secret) if secret.get("type") == SA_TOKEN_TYPE else None
                    if stored is not None:
                        meta = secret["metadata"]
                        key = (meta.get("namespace", ""), meta["name"])
                        index.secrets.setdefault(_digest(stored), []).append(key)
            index.revision = head
        return list(index.secrets.get(_digest(token), []))


def _account(store: Store, namespace: str, annotations: Mapping[str, Any]) -> Any:
    name = annotations.get(SA_NAME)
    return store.get("ServiceAccount", namespace, name) if isinstance(name, str) and name else None


def with_token(store: Store, secret: dict[str, Any]) -> dict[str, Any]:
    """A service-account-token Secret as stored: bound to the current uid of the account it
    names (no uid, so no working token, when there is no such account; a uid the client sent
    is never trusted), with a fresh token if it came without one."""
    if secret.get("type") != SA_TOKEN_TYPE:
        return secret
    meta = dict(secret.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != SA_UID}
    account = _account(store, str(meta.get("namespace") or ""), annotations)
    if account is not None and account["metadata"].get("uid"):
        annotations[SA_UID] = account["metadata"]["uid"]
    data = dict(secret.get("data") or {})
    if not data.get("token"):
        data["token"] = base64.b64encode(secrets.token_urlsafe(32).encode()).decode()
    return {**secret, "metadata": {**meta, "annotations": annotations}, "data": data}


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
        target.name or (_selected_name(query) if verb in ("list", "watch") else ""),
    )


def _selected_name(query: Mapping[str, str]) -> str:
    """The name a list or watch selects by ``fieldSelector=metadata.name=X`` (kube-apiserver's
    RequestInfoFactory does the same), so ``resourceNames`` can grant watching one object."""
    for term in (query.get("fieldSelector") or "").split(","):
        field, sep, value = term.strip().partition("=")
        if sep and field == "metadata.name":
            return value.removeprefix("=")
    return ""
