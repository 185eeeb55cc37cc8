"""Commit wake-ups: a write wakes the watchers of the kinds it wrote, and only those; a
wake-up that comes before the wait is not lost; a watcher that never waits delays no writer."""

from __future__ import annotations

import threading
from pathlib import Path

from lab.store import Store
from lab.store.commits import CommitSignal


def configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}}


def secret(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"}}


def test_a_commit_wakes_the_watchers_of_its_kinds_only(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        maps, secrets, both = (store.commits.subscribe(k)
                               for k in (["ConfigMap"], ["Secret"], ["ConfigMap", "Secret"]))
        store.apply(configmap("a"))  # before anyone waits: kept until the wait
        assert maps.wait(0) and both.wait(0)
        assert not secrets.wait(0)
        assert not maps.wait(0)  # one wake-up per commit, cleared by the wait
        store.apply_many([configmap("b"), secret("s")])  # one transaction, two kinds
        assert maps.wait(0) and secrets.wait(0) and both.wait(0)
        assert not both.wait(0)  # two kinds in one transaction: one wake-up
        for sub in (maps, secrets, both):
            sub.close()
        assert store.commits.watchers("ConfigMap") == 0


def test_no_write_no_wake_up(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store, store.commits.subscribe(["ConfigMap"]) as sub:
        store.apply(configmap("a"))
        sub.wait(0)
        store.apply(configmap("a"))  # unchanged: nothing committed, nobody woken
        store.delete("ConfigMap", "default", "missing")
        assert not sub.wait(0)


def test_a_watcher_that_never_waits_delays_no_writer(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        idle = [store.commits.subscribe(["ConfigMap"]) for _ in range(50)]
        done = threading.Event()

        def write() -> None:
            for n in range(200):
                store.apply(configmap(f"c{n}"))
            done.set()

        threading.Thread(target=write, daemon=True).start()
        assert done.wait(60), "writes were held up by watchers that never waited"
        assert store.commits.notified == 200 * len(idle)
        for sub in idle:
            sub.close()


def test_a_waiting_watcher_is_woken_by_another_thread_s_commit(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store, store.commits.subscribe(["ConfigMap"]) as sub:
        threading.Timer(0.05, store.apply, (configmap("a"),)).start()
        assert sub.wait(60)  # returns at the commit, long before the timeout


def test_wake_all_wakes_every_kind() -> None:
    signal = CommitSignal()
    subs = [signal.subscribe(["Pod"]), signal.subscribe(["Secret", "Lease"])]
    signal.wake_all()
    assert all(sub.wait(0) for sub in subs)
