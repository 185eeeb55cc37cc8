"""A watch is woken by a write of its kind through its own API server at once, not at its
next poll of the store (the poll interval was most of the delay from `kubectl apply`'s commit
to a node's maps). Only the written kind's watches wake; a watch whose client stops reading
holds up neither writers nor other watches; a stopping server ends every waiting watch; under
concurrent writers every event arrives once, in order."""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials
from lab.apiserver.server import ApiServer, tls_context
from lab.apiserver.watch import WatchSettings
from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client, configmap

SLOW_POLL = 60.0  # far longer than any read below waits: only a wake-up delivers in time
MAPS = "/api/v1/namespaces/default/configmaps"
SECRETS = "/api/v1/namespaces/default/secrets"


def served(tmp_path: Path, settings: WatchSettings) -> Iterator[tuple[ApiServer, Store, Client]]:
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    api = Api(store, frozenset({creds.token}), watch_settings=settings)
    server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
    try:
        yield server, store, Client(server.port, creds.ca_cert, creds.token)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def slow_poll(tmp_path: Path) -> Iterator[tuple[ApiServer, Store, Client]]:
    yield from served(tmp_path, WatchSettings(poll_interval=SLOW_POLL))


def open_watch(
    client: Client, path: str = MAPS
) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPSConnection("127.0.0.1", client.port, context=client.ctx, timeout=10)
    conn.request("GET", path + "?watch=1", headers={"Authorization": f"Bearer {client.token}"})
    resp = conn.getresponse()
    assert resp.status == 200
    return conn, resp


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def create(client: Client, name: str, **data: str) -> None:
    assert client.request("POST", MAPS, configmap(name, **data)).status == 201


def test_a_write_wakes_every_watch_of_its_kind(slow_poll: tuple[ApiServer, Store, Client]) -> None:
    _, store, client = slow_poll
    conns = [open_watch(client) for _ in range(3)]
    try:
        until(lambda: store.commits.watchers("ConfigMap") == 3, "three watches subscribed")
        for n in range(3):
            create(client, f"c{n}", n=str(n))
            for _, resp in conns:  # within the 10 s socket timeout, not the 60 s poll
                event = json.loads(resp.readline())
                assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", f"c{n}")
    finally:
        for conn, _ in conns:
            conn.close()


def test_a_write_wakes_no_watch_of_another_kind(
    slow_poll: tuple[ApiServer, Store, Client],
) -> None:
    _, store, client = slow_poll
    conns = [open_watch(client, SECRETS) for _ in range(4)] + [open_watch(client)]
    try:
        until(lambda: store.commits.watchers("Secret") == 4, "the Secret watches subscribed")
        until(lambda: store.commits.watchers("ConfigMap") == 1, "the ConfigMap watch subscribed")
        before = store.commits.notified
        create(client, "only-maps")
        assert json.loads(conns[-1][1].readline())["object"]["metadata"]["name"] == "only-maps"
        assert store.commits.notified - before == 1  # the ConfigMap watch, no Secret watch
    finally:
        for conn, _ in conns:
            conn.close()


def test_a_client_that_stops_reading_holds_up_no_writer_and_no_other_watch(
    slow_poll: tuple[ApiServer, Store, Client],
) -> None:
    _, store, client = slow_poll
    # A raw TLS client with a small receive buffer asks for a watch and never reads it: its
    # stream's thread blocks writing once the socket buffers are full.
    raw = socket.create_connection(("127.0.0.1", client.port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled = client.ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    stalled.sendall(
        f"GET {MAPS}?watch=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {client.token}\r\n\r\n"
        .encode()
    )
    reader_conn, reader = open_watch(client)
    try:
        until(lambda: store.commits.watchers("ConfigMap") == 2, "both watches subscribed")
        blob = "x" * 100_000  # 60 of these are far more than the socket buffers hold
        for n in range(60):
            create(client, f"big{n}", blob=blob)  # each answered within the socket timeout
        names = [json.loads(reader.readline())["object"]["metadata"]["name"] for _ in range(60)]
        assert names == [f"big{n}" for n in range(60)]
    finally:
        reader_conn.close()
        try:
            stalled.close()
        except (OSError, ssl.SSLError):
            pass


def test_a_stopping_server_ends_waiting_watches(
    slow_poll: tuple[ApiServer, Store, Client],
) -> None:
    server, store, client = slow_poll
    conn, resp = open_watch(client)
    until(lambda: store.commits.watchers("ConfigMap") == 1, "the watch subscribed")
    ended = threading.Event()

    def drain() -> None:
        while resp.readline():
            pass
        ended.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        server.stop()
        assert ended.wait(10), "the watch outlived its server's stop"
        until(lambda: store.commits.watchers("ConfigMap") == 0, "the watch unsubscribed")
    finally:
        conn.close()


def test_concurrent_writers_every_event_once_in_order(
    slow_poll: tuple[ApiServer, Store, Client],
) -> None:
    _, store, client = slow_poll
    conn, resp = open_watch(client)
    until(lambda: store.commits.watchers("ConfigMap") == 1, "the watch subscribed")
    writers, each = 4, 25

    def write(w: int) -> None:
        for n in range(each):
            create(client, f"w{w}-{n}")
            if n % 5 == 0:  # updates too, so one object's events interleave with others'
                assert client.request(
                    "PATCH", f"{MAPS}/w{w}-{n}", {"data": {"k": "v"}},
                    ctype="application/merge-patch+json",
                ).status == 200

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        expected = writers * (each + each // 5)
        events = [json.loads(resp.readline()) for _ in range(expected)]
        versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
        assert versions == sorted(set(versions))  # no duplicate, no reordering
        _, head = store.list("ConfigMap")
        assert versions[-1] == head
        added = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
        assert sorted(added) == sorted(f"w{w}-{n}" for w in range(writers) for n in range(each))
    finally:
        conn.close()


@pytest.fixture
def default_poll(tmp_path: Path) -> Iterator[tuple[ApiServer, Store, Client]]:
    yield from served(tmp_path, WatchSettings())


def test_a_watch_on_a_descriptor_above_1024_outlives_its_heartbeats(
    default_poll: tuple[ApiServer, Store, Client],
) -> None:
    """A lab's API server holds over a thousand descriptors (each watch: a socket and two
    SQLite connections). A watch whose socket is numbered 1024 or above must keep streaming
    through its idle heartbeats (select() refused such descriptors and ended the watch), and
    still end once its client leaves."""
    _, store, client = default_poll
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below 1300")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the next fds are > 1024
    try:
        conn, resp = open_watch(client)
        until(lambda: store.commits.watchers("ConfigMap") == 1, "the watch subscribed")
        time.sleep(2.5)  # past two idle heartbeats, each a check that the client is there
        create(client, "after-heartbeats")
        event = json.loads(resp.readline())
        assert event["type"] == "ADDED"
        assert event["object"]["metadata"]["name"] == "after-heartbeats"
        conn.close()
        until(lambda: store.commits.watchers("ConfigMap") == 0, "the watch ended with its client")
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
