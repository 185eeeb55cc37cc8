"""Several processes on one SQLite file: no lost writes, gap-free revisions, ordered watches."""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path
from typing import Any

from lab.store import Conflict, Store

from .conftest import svc

WRITERS = 4
WRITES = 200
OBJECTS_PER_WRITER = 50
CTX = mp.get_context("spawn")  # a fresh interpreter per process, like separate daemons


def _write(path: str, writer: int, start: MPEvent) -> None:
    start.wait(30)
    with Store(path) as s:
        for i in range(WRITES):
            # 50 creates then 150 updates; every write changes the spec, so each one counts.
            s.apply(svc(f"w{writer}-{i % OBJECTS_PER_WRITER}", port=i))


def _increment(path: str, times: int, start: MPEvent) -> None:
    start.wait(30)
    with Store(path) as s:
        for _ in range(times):
            while True:  # the read-modify-write loop every controller runs
                current = s.get("ConfigMap", "default", "counter")
                assert current is not None
                current["data"]["n"] = str(int(current["data"]["n"]) + 1)
                try:
                    s.update(current)
                    break
                except Conflict:
                    continue


def _watch(path: str, count: int, ready: MPEvent, out: Any) -> None:
    with Store(path) as s:
        stop = threading.Event()
        seen = []
        ready.set()
        for event in s.watch(0, poll_interval=0.005, stop=stop):
            seen.append((event.revision, event.type, event.name, event.object["spec"]))
            if len(seen) == count:
                stop.set()
        out.put(seen)


def _start_together(processes: list[Any], start: MPEvent, timeout: float = 60) -> None:
    """Start the processes, release them at once, and check that every one succeeded."""
    for p in processes:
        p.start()
    start.set()
    for p in processes:
        p.join(timeout)
    for p in processes:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_concurrent_writers_lose_nothing_and_a_watcher_sees_all_in_order(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "store.db")
    Store(path).close()
    total = WRITERS * WRITES
    start, ready = CTX.Event(), CTX.Event()
    out = CTX.Queue()
    watcher = CTX.Process(target=_watch, args=(path, total, ready, out))
    watcher.start()
    assert ready.wait(30), "watcher process did not start"
    _start_together(
        [CTX.Process(target=_write, args=(path, w, start)) for w in range(WRITERS)], start
    )
    try:
        watched = out.get(timeout=30)
    except queue.Empty:
        watcher.kill()
        raise AssertionError("the watcher did not see every event") from None
    watcher.join(10)
    assert watcher.exitcode == 0

    with Store(path) as s:
        assert s.revision() == total
        events = s.events_since(0, limit=total + 1)
        # Unique, gap-free revisions: exactly one event per write.
        assert [e.revision for e in events] == list(range(1, total + 1))
        assert sum(e.type == "ADDED" for e in events) == WRITERS * OBJECTS_PER_WRITER
        objs, revision = s.list("Service")
        assert revision == total
        assert len(objs) == WRITERS * OBJECTS_PER_WRITER
        for obj in objs:
            # The last of the four writes to w{w}-{k} set port 150 + k, generation 4.
            k = int(obj["metadata"]["name"].split("-")[1])
            assert obj["spec"]["ports"] == [{"port": WRITES - OBJECTS_PER_WRITER + k}]
            assert obj["metadata"]["generation"] == WRITES // OBJECTS_PER_WRITER
        # The watcher in its own process saw every event, in revision order, with its content.
        assert watched == [(e.revision, e.type, e.name, e.object["spec"]) for e in events]


def test_optimistic_concurrency_across_processes_loses_no_increment(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    with Store(path) as s:
        s.create(
            {
                "kind": "ConfigMap",
                "metadata": {"name": "counter", "namespace": "default"},
                "data": {"n": "0"},
            }
        )
    start = CTX.Event()
    _start_together(
        [CTX.Process(target=_increment, args=(path, 25, start)) for _ in range(4)], start
    )
    with Store(path) as s:
        counter = s.get("ConfigMap", "default", "counter")
        assert counter is not None
        assert counter["data"] == {"n": "100"}
        assert counter["metadata"]["generation"] == 101
        assert s.revision() == 101
