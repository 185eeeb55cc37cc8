"""Malformed and hostile request bodies get a 400 Status naming the problem; nothing is stored."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

import pytest

from lab.apiserver.server import ApiServer
from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client, configmap

CMS = "/api/v1/namespaces/default/configmaps"

BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
kind: ConfigMap
metadata: {name: bomb}
"""


@pytest.mark.parametrize(
    ("body", "ctype", "words"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON or YAML object"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
        (b"[" * 50000 + b"]" * 50000, "application/json", "nests deeper"),
        (
            json.dumps(configmap("deep", x="1")).encode()[:-1]
            + b', "d": '
            + b"[" * 150
            + b"]" * 150
            + b"}",
            "application/json",
            "nests deeper",
        ),
        (BOMB.encode(), "application/yaml", "aliases"),
        (b"kind: ConfigMap\nmetadata: {name: [unclosed\n", "application/yaml", "not valid YAML"),
        (b"\x08\x01", "application/cbor", "unknown format"),
    ],
)
def test_bad_bodies_are_400_or_415_and_store_nothing(
    client: Client, store: Store, body: bytes, ctype: str, words: str
) -> None:
    before = store.revision()
    reply = client.request("POST", CMS, body, ctype=ctype)
    assert reply.status in (400, 415) and reply.body["kind"] == "Status"
    assert words in reply.body["message"]
    assert store.revision() == before


def test_create_with_a_resource_version_is_refused(client: Client) -> None:
    obj = configmap("c")
    obj["metadata"]["resourceVersion"] = "7"
    reply = client.request("POST", CMS, obj)
    assert reply.status == 400 and "resourceVersion" in reply.body["message"]


def test_server_survives_a_garbage_connection(client: Client) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=5)  # plain HTTP to TLS
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/version")
        conn.getresponse().read()
    assert client.get("/version").status == 200


def test_a_watch_whose_client_left_ends(server_parts: tuple[ApiServer, Store, Client]) -> None:
    _, _, client = server_parts
    before = threading.active_count()
    stream = client.watch(CMS, timeoutSeconds="600")
    client.request("POST", CMS, configmap("a"))
    assert next(stream)["type"] == "ADDED"
    stream.close()  # the client closes the connection; the server's thread must notice
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= before


@pytest.mark.parametrize("options", [[1], "x", {"preconditions": "x"}])
def test_malformed_delete_options_are_400_and_delete_nothing(
    client: Client, options: object
) -> None:
    client.request("POST", CMS, configmap("a"))
    reply = client.request("DELETE", f"{CMS}/a", options)
    assert reply.status == 400 and reply.body["kind"] == "Status"
    assert client.get(f"{CMS}/a").status == 200


def _raw_tls(client: Client) -> Any:
    import socket

    raw = socket.create_connection(("127.0.0.1", client.port), timeout=10)
    return client.ctx.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.mark.parametrize(
    ("length", "code"), [("-5", b" 400 "), ("abc", b" 400 "), (str(4 * 1024 * 1024), b" 413 ")]
)
def test_bad_content_lengths_are_refused(client: Client, length: str, code: bytes) -> None:
    sock = _raw_tls(client)
    request = f"POST {CMS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {client.token}\r\nContent-Length: {length}\r\n\r\n"
    sock.sendall(request.encode())
    status_line = sock.recv(4096).split(b"\r\n")[0]
    sock.close()
    assert code in status_line


def test_a_stalled_client_is_disconnected(tmp_path: Any) -> None:
    from lab.apiserver.app import Api
    from lab.apiserver.certs import credentials
    from lab.apiserver.server import tls_context

    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "s.db")
    server = ApiServer(
        Api(store, frozenset({creds.token})),
        tls_context(creds.server_cert, creds.server_key),
        idle_timeout=0.5,
    ).start()
    try:
        client = Client(server.port, creds.ca_cert, creds.token)
        sock = _raw_tls(client)
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")  # never finished
        sock.settimeout(10)
        assert sock.recv(4096) == b""  # the server hung up (a stuck server raises a timeout)
        sock.close()
    finally:
        server.stop()
        store.close()
