"""The lab's components as ServiceAccounts, as on a cluster: their ClusterRoles and bindings
(from the manifests a cluster gets), a token Secret each, and a kubeconfig each."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from lab.apiserver.auth import SA_NAME, SA_TOKEN_TYPE, SA_UID, _token_of, with_token
from lab.store import Store

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = (
    REPO / "deploy" / "daemonset" / "rbac.yaml",
    REPO / "deploy" / "controlplane" / "rbac.yaml",
    REPO / "deploy" / "controller" / "rbac.yaml",
    Path(__file__).with_name("lab-rbac.yaml"),
)
SEEDED_KINDS = frozenset(
    {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)


class IdentityError(ValueError):
    """A manifest holds something the lab does not seed."""


def load(paths: Iterable[Path]) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            if doc.get("kind") not in SEEDED_KINDS:
                raise IdentityError(f"{path}: kind {doc.get('kind')!r} is not one the lab seeds")
            objs.append(doc)
    return objs


def seed(store: Store, objs: list[dict[str, Any]]) -> dict[str, str]:
    """Apply the accounts and roles; give each ServiceAccount a token Secret (kept across
    restarts). Returns ServiceAccount name -> token."""
    store.apply_many(objs)
    tokens: dict[str, str] = {}
    for obj in objs:
        if obj["kind"] != "ServiceAccount":
            continue
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        secret = store.get("Secret", namespace, f"{name}-token")
        account = store.get("ServiceAccount", namespace, name)
        uid = (account or {}).get("metadata", {}).get("uid")
        if secret is not None and (secret["metadata"].get("annotations") or {}).get(SA_UID) != uid:
            secret, _ = store.apply(with_token(store, secret))  # a store from before uid binding
        if secret is None or _token_of(secret) is None:
            secret, _ = store.apply(
                with_token(
                    store,
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "type": SA_TOKEN_TYPE,
                        "metadata": {
                            "name": f"{name}-token",
                            "namespace": namespace,
                            "annotations": {SA_NAME: name},
                        },
                    },
                )
            )
        token = _token_of(secret)
        assert token is not None  # with_token filled it
        tokens[name] = token
    return tokens
