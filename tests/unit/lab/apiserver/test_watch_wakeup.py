"""A watch is woken by a write through its own API server at once, not at its next poll of the
store (the poll interval was most of the delay from `kubectl apply`'s commit to a node's
maps); writes from elsewhere are still found by polling, and a stopping server ends every
waiting watch."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store import Store
from lab.apiserver.__main__ import bootstrap
from lab.apiserver.app import Api
from lab.apiserver.certs import credentials
from lab.apiserver.server import ApiServer, tls_context
from lab.apiserver.watch import WatchSettings
from tests.unit.lab.apiserver.conftest import Client, configmap

SLOW_POLL = 60.0  # far longer than any read below waits: only a wake-up can deliver in time


@pytest.fixture
def slow_poll(tmp_path: Path) -> Iterator[tuple[ApiServer, Store, Client]]:
    creds = credentials(tmp_path / "state")
    store = Store(tmp_path / "store.db")
    bootstrap(store)
    api = Api(
        store, frozenset({creds.token}), watch_settings=WatchSettings(poll_interval=SLOW_POLL)
    )
    server = ApiServer(api, tls_context(creds.server_cert, creds.server_key)).start()
    try:
        yield server, store, Client(server.port, creds.ca_cert, creds.token)
    finally:
        server.stop()
        store.close()


def open_watch(client: Client) -> tuple[http.client.HTTPSConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPSConnection("127.0.0.1", client.port, context=client.ctx, timeout=10)
    conn.request(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1",
        headers={"Authorization": f"Bearer {client.token}"},
    )
    resp = conn.getresponse()
    assert resp.status == 200
    return conn, resp


def test_a_write_through_the_server_wakes_its_watches(
    slow_poll: tuple[ApiServer, Store, Client],
) -> None:
    _, _, client = slow_poll
    conns = [open_watch(client) for _ in range(3)]  # every waiting watch, not just one
    try:
        for n in range(3):
            assert (
                client.request(
                    "POST", "/api/v1/namespaces/default/configmaps", configmap(f"c{n}", n=str(n))
                ).status
                == 201
            )
            for _, resp in conns:  # within the 10 s socket timeout, not the 60 s poll
                event = json.loads(resp.readline())
                assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", f"c{n}")
    finally:
        for conn, _ in conns:
            conn.close()


def test_a_stopping_server_ends_waiting_watches(
    slow_poll: tuple[ApiServer, Store, Client],
) -> None:
    server, _, client = slow_poll
    conn, resp = open_watch(client)
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
    finally:
        conn.close()


def test_wait_for_commit_returns_at_a_write_or_a_wake(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        seen = store.commits()
        store.apply_many([configmap("a")])
        assert store.wait_for_commit(seen, SLOW_POLL) == seen + 1  # already written: no wait
        woke = threading.Thread(target=store.wake)
        threading.Timer(0.05, woke.start).start()
        assert store.wait_for_commit(seen + 1, SLOW_POLL) == seen + 1  # woken, nothing new
        stopped = threading.Event()
        stopped.set()  # a stop set before the wait starts (its wake came too early)
        assert store.wait_for_commit(seen + 1, SLOW_POLL, stopped) == seen + 1
