"""Store writes and reads: server fields, apply actions, concurrency control, listing."""

from __future__ import annotations

import re
import stat
import threading
import uuid
from pathlib import Path

import pytest

from lab.store import (
    AlreadyExists,
    Conflict,
    InvalidObject,
    NotFound,
    ObjectTooLarge,
    Store,
    StoreClosed,
    StoreError,
)
from lab.store.objects import MAX_OBJECT_BYTES

from .conftest import svc

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_creates_directory_file_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store.db"
    with Store(path) as s:
        assert s.revision() == 0
        assert s.list() == ([], 0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with Store(path) as again:  # reopening an existing file keeps its data
        assert again.revision() == 0


def test_create_sets_server_fields(store: Store) -> None:
    obj = svc()
    created = store.create(obj)
    meta = created["metadata"]
    assert uuid.UUID(meta["uid"]).version == 4
    assert RFC3339_UTC.match(meta["creationTimestamp"])
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == "1"
    assert "uid" not in obj["metadata"], "the caller's dict must not be modified"
    assert store.get("Service", "default", "web") == created


def test_create_twice_raises_already_exists(store: Store) -> None:
    store.create(svc())
    with pytest.raises(AlreadyExists, match="Service default/web already exists"):
        store.create(svc())
    assert store.revision() == 1


def test_revisions_are_monotonic_across_kinds_of_write(store: Store) -> None:
    revisions = [
        store.create(svc("a"))["metadata"]["resourceVersion"],
        store.apply(svc("b"))[0]["metadata"]["resourceVersion"],
        store.update(svc("a", port=81))["metadata"]["resourceVersion"],
        store.update_status("Service", "default", "a", {"ok": True})["metadata"]["resourceVersion"],
    ]
    deleted = store.delete("Service", "default", "b")
    assert deleted is not None
    revisions.append(deleted["metadata"]["resourceVersion"])
    assert [int(r) for r in revisions] == [1, 2, 3, 4, 5]
    assert store.revision() == 5


def test_apply_reports_created_configured_unchanged(store: Store) -> None:
    first, action = store.apply(svc())
    assert action == "created"
    same, action = store.apply(svc())
    assert action == "unchanged"
    assert same == first
    assert store.revision() == 1

    changed, action = store.apply(svc(port=8080))
    assert action == "configured"
    assert changed["metadata"]["uid"] == first["metadata"]["uid"]
    assert changed["metadata"]["creationTimestamp"] == first["metadata"]["creationTimestamp"]
    assert changed["metadata"]["generation"] == 2
    assert changed["metadata"]["resourceVersion"] == "2"


def test_apply_ignores_client_set_server_fields_for_unchanged(store: Store) -> None:
    first, _ = store.apply(svc())
    echoed = svc()
    echoed["metadata"].update(uid="other", resourceVersion="999", generation=42)
    again, action = store.apply(echoed)
    assert action == "unchanged"
    assert again == first


def test_label_change_configures_without_bumping_generation(store: Store) -> None:
    store.apply(svc())
    labelled, action = store.apply(svc(labels={"app": "web"}))
    assert action == "configured"
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["labels"] == {"app": "web"}


def test_apply_keeps_the_stored_status_whatever_the_object_brings(store: Store) -> None:
    store.apply(svc())
    store.update_status("Service", "default", "web", {"loadBalancer": {"ip": "10.0.0.1"}})
    reapplied, action = store.apply(svc())
    assert action == "unchanged"
    assert reapplied["status"] == {"loadBalancer": {"ip": "10.0.0.1"}}
    forged, action = store.apply(svc(status={"loadBalancer": {"ip": "6.6.6.6"}}))
    assert action == "unchanged"
    assert store.get("Service", "default", "web")["status"] == {
        "loadBalancer": {"ip": "10.0.0.1"}
    }
    relabelled, action = store.apply(svc(labels={"a": "b"}, status={"loadBalancer": {}}))
    assert action == "configured"
    assert relabelled["status"] == {"loadBalancer": {"ip": "10.0.0.1"}}


@pytest.mark.parametrize("write", ["apply", "create"])
def test_create_starts_without_status(store: Store, write: str) -> None:
    obj = svc(status={"loadBalancer": {"ip": "6.6.6.6"}})
    created = store.apply(obj)[0] if write == "apply" else store.create(obj)
    assert "status" not in created
    assert "status" not in store.get("Service", "default", "web")


def test_update_keeps_the_stored_status(store: Store) -> None:
    store.create(svc())
    store.update_status("Service", "default", "web", {"ready": True})
    updated = store.update(svc(port=81, status={"ready": False}))
    assert updated["status"] == {"ready": True}
    assert updated["spec"]["ports"] == [{"port": 81}]


def test_objects_over_the_size_limit_are_refused_by_name(store: Store) -> None:
    big = svc()
    big["metadata"]["annotations"] = {"blob": "x" * MAX_OBJECT_BYTES}
    with pytest.raises(ObjectTooLarge, match=r"Service default/web: object is \d+ bytes, over"):
        store.apply(big)
    assert store.get("Service", "default", "web") is None
    store.create(svc())
    with pytest.raises(ObjectTooLarge, match="Service default/web"):
        store.update_status("Service", "default", "web", {"blob": "x" * MAX_OBJECT_BYTES})
    assert "status" not in store.get("Service", "default", "web")
    assert store.revision() == 1


def test_update_status_never_bumps_generation_and_skips_identical(store: Store) -> None:
    store.create(svc())
    updated = store.update_status("Service", "default", "web", {"ready": False})
    assert updated["metadata"]["generation"] == 1
    assert updated["metadata"]["resourceVersion"] == "2"
    assert updated["spec"] == svc()["spec"]
    again = store.update_status("Service", "default", "web", {"ready": False})
    assert again == updated
    assert store.revision() == 2
    with pytest.raises(NotFound, match="Service default/nope not found"):
        store.update_status("Service", "default", "nope", {})


def test_update_optimistic_concurrency(store: Store) -> None:
    created = store.create(svc())
    # Two clients read resourceVersion 1; the first write wins, the second conflicts.
    first = svc(port=81)
    first["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    assert store.update(first)["metadata"]["resourceVersion"] == "2"
    stale = svc(port=82)
    stale["metadata"]["resourceVersion"] = "1"
    with pytest.raises(Conflict, match=r"Service default/web was modified.*expected.* 1, found 2"):
        store.update(stale)
    with pytest.raises(Conflict):
        store.update(svc(port=83), expect_resource_version="1")
    with pytest.raises(Conflict):
        store.update_status("Service", "default", "web", {"x": 1}, expect_resource_version="1")
    assert store.get("Service", "default", "web")["spec"]["ports"] == [{"port": 81}]  # type: ignore[index]
    # The explicit expectation wins over the one the object carries.
    assert store.update(stale, expect_resource_version="2")["metadata"]["generation"] == 3


def test_update_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="Service default/web not found"):
        store.update(svc())


def test_update_without_changes_writes_nothing(store: Store) -> None:
    created = store.create(svc())
    assert store.update(svc()) == created
    assert store.revision() == 1


def test_delete_returns_last_state_with_deletion_revision(store: Store) -> None:
    store.create(svc())
    deleted = store.delete("Service", "default", "web")
    assert deleted is not None
    assert deleted["spec"] == svc()["spec"]
    assert deleted["metadata"]["resourceVersion"] == "2"
    assert store.get("Service", "default", "web") is None
    assert store.delete("Service", "default", "web") is None
    assert store.revision() == 2


def test_delete_with_stale_version_conflicts(store: Store) -> None:
    store.create(svc())
    store.update(svc(port=81))
    with pytest.raises(Conflict):
        store.delete("Service", "default", "web", expect_resource_version="1")
    assert store.get("Service", "default", "web") is not None


def test_apply_many_is_all_or_nothing(store: Store) -> None:
    results = store.apply_many([svc("a"), svc("b"), svc("a", port=81)])
    assert [a for _, a in results] == ["created", "created", "configured"]
    assert store.revision() == 3
    with pytest.raises(InvalidObject):
        store.apply_many([svc("c"), {"kind": "Service", "metadata": {}}])
    assert store.get("Service", "default", "c") is None
    assert store.revision() == 3


def test_failure_mid_transaction_rolls_back(store: Store) -> None:
    store.create(svc("a"))

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with store._write() as txn:
            txn.put("ADDED", ("Service", "default", "b"), svc("b"))
            raise Boom
    assert store.get("Service", "default", "b") is None
    assert store.revision() == 1
    assert [e.name for e in store.events_since(0)] == ["a"]


def test_delete_many(store: Store) -> None:
    store.apply_many([svc("a"), svc("b"), svc("c")])
    deleted = store.delete_many(
        [("Service", "default", "a"), ("Service", "default", "zzz"), ("Service", "default", "c")]
    )
    assert [d["metadata"]["name"] for d in deleted] == ["a", "c"]
    assert [o["metadata"]["name"] for o in store.list()[0]] == ["b"]
    assert store.revision() == 5


def test_list_filters_sorts_and_reports_revision(store: Store) -> None:
    store.apply_many(
        [
            svc("b", "prod", labels={"app": "x"}),
            svc("a", "prod", labels={"app": "y"}),
            svc("c", "dev", labels={"app": "x"}),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}},
        ]
    )
    everything, revision = store.list()
    assert revision == 4
    keys = [
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in everything
    ]
    assert keys == [
        ("Namespace", "", "prod"),
        ("Service", "dev", "c"),
        ("Service", "prod", "a"),
        ("Service", "prod", "b"),
    ]
    prod, _ = store.list("Service", "prod")
    assert [o["metadata"]["name"] for o in prod] == ["a", "b"]
    selected, _ = store.list("Service", label_selector={"app": "x"})
    assert [o["metadata"]["name"] for o in selected] == ["c", "b"]
    several, _ = store.list(["Namespace", "Deployment"])
    assert [o["kind"] for o in several] == ["Namespace"]
    assert store.list([]) == ([], 4)


def test_list_revision_is_consistent_with_contents_under_writes(store: Store) -> None:
    """Whatever the interleaving, the objects returned are exactly those at the revision."""
    stop = threading.Event()

    def writer() -> None:
        with Store(store.path) as own:
            i = 0
            while not stop.is_set():
                own.apply(svc(f"s{i % 20}", port=i))
                i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(30):
            objs, revision = store.list("Service")
            assert all(int(o["metadata"]["resourceVersion"]) <= revision for o in objs)
            # Replaying the event log up to the revision rebuilds exactly the listed state.
            replay: dict[str, dict] = {}
            for event in store.events_since(0, limit=100000):
                if event.revision <= revision:
                    replay[event.name] = event.object
            assert {o["metadata"]["name"]: o for o in objs} == replay
    finally:
        stop.set()
        thread.join()


def test_threads_share_one_store(store: Store) -> None:
    def work(t: int) -> None:
        for i in range(25):
            store.create(svc(f"t{t}-{i}"))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    objs, revision = store.list()
    assert revision == 100
    assert len(objs) == 100


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    s = Store(tmp_path / "store.db")
    s.close()
    with pytest.raises(StoreClosed):
        s.get("Service", "default", "web")
    assert issubclass(StoreClosed, StoreError)


def test_history_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Store(tmp_path / "store.db", history=0)
