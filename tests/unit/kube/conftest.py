"""A lab API server on loopback over a temporary store, stoppable and restartable on its
port, with a kubeconfig for lightkube (the admin token)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.apiserver import identities
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import Credentials, credentials, write_kubeconfig
from lab.apiserver.crds import install_gateway_api
from lab.apiserver.server import ApiServer, tls_context
from lab.apiserver.watch import WatchSettings
from lab.store import Store

HISTORY = 30


@dataclass
class Lab:
    store: Store
    creds: Credentials
    port: int
    kubeconfig: Path
    server: ApiServer | None = None
    bookmark_interval: float = 0.2

    def start(self) -> None:
        self.server = serve(self.store, self.creds, self.port, self.bookmark_interval)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def serve(store: Store, creds: Credentials, port: int, bookmark_interval: float = 0.2) -> ApiServer:
    """The lab API server on 127.0.0.1:``port``, quick to poll, admin token only."""
    api = Api(
        store,
        frozenset({creds.token}),
        watch_settings=WatchSettings(poll_interval=0.01, bookmark_interval=bookmark_interval),
    )
    return ApiServer(api, tls_context(creds.server_cert, creds.server_key), port).start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_lab(tmp_path, gateway_api=True)


def serve_lab(tmp_path: Path, *, gateway_api: bool) -> Iterator[Lab]:
    """A lab API server on loopback, with the Gateway API CRDs (as `tulle lab up` installs
    them) or without (a cluster that never installed Gateway API)."""
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db", history=HISTORY)
    bootstrap(store)
    if gateway_api:
        install_gateway_api(store)
    port = free_port()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "t", f"https://127.0.0.1:{port}", creds)
    lab = Lab(store, creds, port, kubeconfig)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
        store.close()


def account_kubeconfig(lab: Lab, account: str) -> Path:
    """A kubeconfig with ``account``'s token, as `tulle lab up` writes for each component
    (seeds the ServiceAccounts and roles of deploy/daemonset/rbac.yaml and lab-rbac.yaml)."""
    tokens = identities.seed(lab.store, identities.load(identities.MANIFESTS))
    path = lab.kubeconfig.with_name(f"{account}.kubeconfig")
    url = f"https://127.0.0.1:{lab.port}"
    return write_kubeconfig(path, "t", url, lab.creds, token=tokens[account], user=account)


class RecordingStop(threading.Event):
    """A stop event (an agent's, an informer's), recording how long each wait on it was asked to last."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)
