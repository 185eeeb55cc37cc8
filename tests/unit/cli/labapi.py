"""A lab API server on loopback over a store file, and an admin kubeconfig for it: what the
`tulle` CLI talks to in unit tests (no lab, no root)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.auth import with_token
from lab.apiserver.certs import Credentials, credentials, write_kubeconfig
from lab.apiserver.crds import install_gateway_api
from lab.apiserver.server import ApiServer, tls_context
from lab.store import Store


@dataclass
class LabApi:
    kubeconfig: Path
    url: str
    creds: Credentials
    store: Store

    def kubeconfig_for(self, path: Path, token: str, user: str) -> Path:
        """A kubeconfig for another identity (a ServiceAccount's token) on this server."""
        return write_kubeconfig(path, "t", self.url, self.creds, token=token, user=user)

    def service_account_token(self, namespace: str, name: str) -> str:
        """Create ServiceAccount ``name`` with a token Secret (the server fills the token in)
        straight in the store, as the lab seeds its components."""
        self.store.create(
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": name, "namespace": namespace}}
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": f"{name}-token",
                "namespace": namespace,
                "annotations": {"kubernetes.io/service-account.name": name},
            },
            "data": {"token": base64.b64encode(f"tok-{namespace}-{name}".encode()).decode()},
        }
        self.store.create(with_token(self.store, secret))  # bound to the account's uid
        return f"tok-{namespace}-{name}"


@contextmanager
def lab_api(
    store_path: Path, state: Path | None = None, *, gateway_api: bool = True
) -> Iterator[LabApi]:
    """``gateway_api`` False: a cluster without the Gateway API CRDs."""
    state = state or store_path.parent / "apiserver"
    creds = credentials(state)
    store = Store(store_path)
    bootstrap(store)
    if gateway_api:
        install_gateway_api(store)  # as `tulle lab up` does
    server = ApiServer(Api(store, frozenset({creds.token})),
                       tls_context(creds.server_cert, creds.server_key)).start()
    url = f"https://127.0.0.1:{server.port}"
    try:
        yield LabApi(write_kubeconfig(state / "kubeconfig", "t", url, creds), url, creds, store)
    finally:
        server.stop()
        store.close()
