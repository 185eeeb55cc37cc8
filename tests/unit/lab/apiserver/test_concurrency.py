"""Concurrent clients: optimistic concurrency loses no update; a watch misses no write."""

from __future__ import annotations

import threading
from typing import Any

from tests.unit.lab.apiserver.conftest import Client, configmap

CMS = "/api/v1/namespaces/default/configmaps"


def _increment(client: Client, times: int, conflicts: list[int]) -> None:
    for _ in range(times):
        while True:
            current = client.get(f"{CMS}/counter").body
            current["data"]["n"] = str(int(current["data"]["n"]) + 1)
            reply = client.request("PUT", f"{CMS}/counter", current)
            if reply.status == 200:
                break
            assert reply.status == 409 and reply.body["reason"] == "Conflict"
            conflicts.append(1)


def test_read_modify_write_with_resource_versions_loses_no_update(client: Client) -> None:
    client.request("POST", CMS, configmap("counter", n="0"))
    conflicts: list[int] = []
    threads = [threading.Thread(target=_increment, args=(client, 10, conflicts)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert client.get(f"{CMS}/counter").body["data"]["n"] == "40"


def test_a_watch_sees_every_concurrent_write_once_in_order(client: Client) -> None:
    start = client.get(CMS).body["metadata"]["resourceVersion"]

    def write(prefix: str) -> None:
        for i in range(5):  # 15 writes in all: within the fixture store's 20-event history
            client.request("POST", CMS, configmap(f"{prefix}{i}"))

    writers = [threading.Thread(target=write, args=(p,)) for p in "abc"]
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    events: list[dict[str, Any]] = []
    for event in client.watch(CMS, resourceVersion=start, timeoutSeconds="1"):
        events.append(event)
    revisions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert revisions == sorted(set(revisions))
    assert sorted(e["object"]["metadata"]["name"] for e in events) == sorted(
        f"{p}{i}" for p in "abc" for i in range(5)
    )
