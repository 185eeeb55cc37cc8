"""A lab API server on loopback (HTTPS, the lab CA) over a temporary store, and a small client."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials, write_kubeconfig
from lab.apiserver.crds import install_gateway_api
from lab.apiserver.server import ApiServer, tls_context
from lab.apiserver.watch import WatchSettings
from lab.store import Store

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@dataclass
class Reply:
    status: int
    body: Any


class Client:
    def __init__(self, port: int, ca: Path, token: str) -> None:
        self.port = port
        self.token = token
        self.ctx = ssl.create_default_context(cafile=str(ca))

    def _conn(self, timeout: float = 10) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.ctx, timeout=timeout
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        ctype: str = JSON,
        accept: str = JSON,
        token: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Reply:
        """One request; ``headers`` are sent as given, repeated names included."""
        conn = self._conn()
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        url = path + ("?" + urlencode(query) if query else "")
        sent = [("Content-Type", ctype), ("Accept", accept), *headers]
        if token if token is not None else self.token:
            sent.append(("Authorization", f"Bearer {token if token is not None else self.token}"))
        conn.putrequest(method, url)
        for name, value in sent:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(data or b"")))
        conn.endheaders(data)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        try:
            return Reply(resp.status, json.loads(raw))
        except ValueError:
            return Reply(resp.status, raw)

    def get(self, path: str, **query: str) -> Reply:
        return self.request("GET", path, query=query or None)

    def watch(self, path: str, accept: str = JSON, **query: str) -> Iterator[dict[str, Any]]:
        """Watch events as they arrive; the iterator ends when the server ends the stream."""
        conn = self._conn(timeout=10)
        conn.request(
            "GET",
            path + "?" + urlencode({"watch": "true", **query}),
            headers={"Authorization": f"Bearer {self.token}", "Accept": accept},
        )
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        try:
            while line := resp.readline():
                yield json.loads(line)
        finally:
            conn.close()


@pytest.fixture
def server_parts(tmp_path: Path) -> Iterator[tuple[ApiServer, Store, Client]]:
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db", history=20)
    bootstrap(store)
    install_gateway_api(store)  # as `tulle lab up` does
    api = Api(
        store,
        frozenset({creds.token}),
        watch_settings=WatchSettings(poll_interval=0.01, bookmark_interval=0.2),
    )
    server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
    try:
        yield server, store, Client(server.port, creds.ca_cert, creds.token)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def client(server_parts: tuple[ApiServer, Store, Client]) -> Client:
    return server_parts[2]


@pytest.fixture
def store(server_parts: tuple[ApiServer, Store, Client]) -> Store:
    return server_parts[1]


def configmap(
    name: str, ns: str = "default", labels: dict[str, str] | None = None, **data: str
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def service(name: str, ns: str = "default", port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": port}]},
    }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Store, Path, Callable[[str], Path]]]:
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    install_gateway_api(store)  # as `tulle lab up` does
    api = Api(store, frozenset({creds.token}), watch_settings=WatchSettings(poll_interval=0.02))
    server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "test", server.url, creds)
    try:

        def as_user(token: str) -> Path:
            path = tmp_path / "robot.kubeconfig"
            return write_kubeconfig(path, "test", server.url, creds, token=token, user="robot")

        yield store, kubeconfig, as_user
    finally:
        server.stop()
        store.close()
