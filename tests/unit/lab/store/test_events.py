"""The event log: recorded events, events_since, watch, compaction and the informer helper."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.store import SYNC, Cache, Event, Expired, Store, list_then_watch

from .conftest import svc


def test_every_write_records_one_event(store: Store) -> None:
    store.create(svc())
    store.update(svc(port=81))
    store.update_status("Service", "default", "web", {"ready": True})
    store.delete("Service", "default", "web")
    events = store.events_since(0)
    assert [(e.type, e.revision) for e in events] == [
        ("ADDED", 1),
        ("MODIFIED", 2),
        ("MODIFIED", 3),
        ("DELETED", 4),
    ]
    assert all((e.kind, e.namespace, e.name) == ("Service", "default", "web") for e in events)
    assert events[1].object["spec"]["ports"] == [{"port": 81}]
    assert events[2].object["status"] == {"ready": True}
    # A DELETED event carries the last state, stamped with the deletion's revision.
    assert events[3].object["status"] == {"ready": True}
    assert events[3].object["metadata"]["resourceVersion"] == "4"


def test_events_since_filters_and_limits(store: Store) -> None:
    store.create(svc("a"))
    store.create({"kind": "Namespace", "metadata": {"name": "prod"}})
    store.create(svc("b"))
    assert [e.revision for e in store.events_since(1)] == [2, 3]
    assert [e.name for e in store.events_since(0, kinds=["Service"])] == ["a", "b"]
    assert store.events_since(0, kinds=[]) == []
    assert [e.revision for e in store.events_since(0, limit=2)] == [1, 2]
    assert store.events_since(3) == []
    assert store.events_since(99) == []


def test_compaction_keeps_last_history_events_and_expires_older(tmp_path: Path) -> None:
    with Store(tmp_path / "store.db", history=5) as s:
        for i in range(12):
            s.apply(svc(port=i))
        assert [e.revision for e in s.events_since(7)] == [8, 9, 10, 11, 12]
        with pytest.raises(Expired) as info:
            s.events_since(6)
        assert info.value.compacted == 7
        assert info.value.oldest_available == 8
        assert "relist" in str(info.value) or "list again" in str(info.value)
        with pytest.raises(Expired):
            next(iter(s.watch(0)))
        # Objects are untouched by compaction.
        assert s.get("Service", "default", "web")["spec"]["ports"] == [{"port": 11}]  # type: ignore[index]


def test_watch_resume_returns_exactly_the_missed_events(store: Store) -> None:
    for i in range(5):
        store.apply(svc(port=i))
    _, seen = store.list()
    store.apply(svc(port=100))
    store.delete("Service", "default", "web")
    store.apply(svc("other"))
    stop = threading.Event()
    got = []
    for event in store.watch(seen, stop=stop, poll_interval=0.01):
        got.append(event)
        if len(got) == 3:
            stop.set()
    assert [(e.type, e.revision, e.name) for e in got] == [
        ("MODIFIED", 6, "web"),
        ("DELETED", 7, "web"),
        ("ADDED", 8, "other"),
    ]


def test_watch_yields_live_events_and_stops(store: Store) -> None:
    stop = threading.Event()
    got: list[Event] = []

    def consume() -> None:
        for event in store.watch(store.revision(), ["Service"], poll_interval=0.01, stop=stop):
            got.append(event)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.05)
    store.create({"kind": "Namespace", "metadata": {"name": "ignored"}})
    store.create(svc("a"))
    store.create(svc("b"))
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive(), "watch must return once stop is set"
    assert [(e.name, e.revision) for e in got] == [("a", 2), ("b", 3)]


def test_watch_raises_expired_when_consumer_falls_behind(tmp_path: Path) -> None:
    with Store(tmp_path / "store.db", history=3) as s:
        s.apply(svc(port=0))
        watch = s.watch(0, poll_interval=0.01)
        assert next(watch).revision == 1
        for i in range(1, 10):
            s.apply(svc(port=i))
        with pytest.raises(Expired):
            list(watch)  # the next batch starts after revision 1, which is long gone


def test_list_then_watch_syncs_then_streams_then_resyncs(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store(path, history=2) as s:
        s.apply(svc("a"))
        s.apply({"kind": "Namespace", "metadata": {"name": "prod"}})
        stop = threading.Event()
        received: list[Event] = []
        cache = Cache()
        gate = threading.Semaphore(0)

        def on_event(event: Event) -> None:
            received.append(event)
            cache.handle(event)
            if event.type == "MODIFIED" and event.name == "a":
                gate.acquire()  # stall the consumer so it falls behind compaction

        thread = threading.Thread(
            target=list_then_watch,
            args=(s, ["Service"], on_event, stop),
            kwargs={"poll_interval": 0.01},
        )
        thread.start()
        _wait(lambda: cache.synced)
        assert received[0].type == SYNC
        assert [o["metadata"]["name"] for o in received[0].object["items"]] == ["a"]
        assert received[0].revision == 2

        s.apply(svc("a", port=81))  # rev 3: the consumer blocks on it
        _wait(lambda: len(received) == 2)
        s.delete("Service", "default", "a")  # rev 4
        for i in range(5):
            s.apply(svc("b", port=i))  # revs 5..9, compacting 4 away
        gate.release()
        _wait(lambda: received[-1].type == SYNC and received[-1].revision == 9)
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()
        resync = received[-1]
        assert [o["metadata"]["name"] for o in resync.object["items"]] == ["b"]
        assert set(cache.objects) == {("Service", "default", "b")}
        assert cache.get("Service", "default", "b")["spec"]["ports"] == [{"port": 4}]  # type: ignore[index]


def _wait(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- a property: the event log and the server fields agree with a simple model -------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["apply", "status", "delete"]),
        st.sampled_from(["a", "b"]),
        st.integers(0, 2),  # port (spec)
        st.sampled_from([None, "x", "y"]),  # label value (metadata)
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(_ops)
def test_event_log_replays_to_current_state(ops: list[tuple[str, str, int, str | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.db") as s:
        writes = 0
        generation: dict[str, int] = {}
        for op, name, port, label in ops:
            before = s.get("Service", "default", name)
            if op == "apply":
                labels = None if label is None else {"l": label}
                obj, action = s.apply(svc(name, port=port, labels=labels))
                if before is None:
                    generation[name] = 1
                    assert action == "created"
                elif before["spec"]["ports"][0]["port"] != port:
                    generation[name] += 1
                    assert action == "configured"
                elif before["metadata"].get("labels") != labels:
                    assert action == "configured"
                else:
                    assert action == "unchanged"
                writes += action != "unchanged"
                assert obj["metadata"]["generation"] == generation[name]
            elif op == "status" and before is not None:
                obj = s.update_status("Service", "default", name, {"port": port})
                writes += before.get("status") != {"port": port}
                assert obj["metadata"]["generation"] == generation[name]
            elif op == "delete":
                writes += s.delete("Service", "default", name) is not None
                generation.pop(name, None)
            assert s.revision() == writes

        events = s.events_since(0, limit=10000)
        assert [e.revision for e in events] == list(range(1, writes + 1))
        replay: dict[str, dict] = {}
        for event in events:
            if event.type == "DELETED":
                del replay[event.name]
            else:
                replay[event.name] = event.object
        objs, revision = s.list()
        assert revision == writes
        assert {o["metadata"]["name"]: o for o in objs} == replay
