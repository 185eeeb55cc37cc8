"""The lab controller's loop under store errors: pods keep running, rounds back off and retry,
and the kubelet only ever hears about pods from a listing that succeeded."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agent.lab.controller import TICK, Controller, ControlLoop
from agent.store import Store, StoreBusy
from agent.store.retry import Backoff

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
    "spec": {"containers": [{"name": "echo"}], "nodeName": "node1"},
}


class FailingStore:
    """A real store that raises what SQLite raises while ``errors`` has entries."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.errors: list[Exception] = []

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def revision(self) -> int:
        self._maybe_fail()
        return self.store.revision()

    def list(self, *args: Any, **kw: Any) -> Any:
        self._maybe_fail()
        return self.store.list(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class FakeKubelet:
    def __init__(self) -> None:
        self.synced: list[list[str]] = []
        self.ticks = 0
        self.shutdowns = 0
        self.tick_errors: list[Exception] = []

    def sync(self, pods: list[Any]) -> None:
        self.synced.append([p.metadata.name for p in pods])

    def tick(self) -> None:
        self.ticks += 1
        if self.tick_errors:
            raise self.tick_errors.pop(0)

    def shutdown(self) -> None:
        self.shutdowns += 1


class NoGateways:
    def reconcile(self, objs: Any, services: Any) -> None:
        pass


@pytest.fixture
def loop(tmp_path: Path):
    with Store(tmp_path / "store.db") as real:
        real.create(POD)
        store = FailingStore(real)
        kubelet = FakeKubelet()
        loop = ControlLoop(
            store,  # type: ignore[arg-type]
            kubelet,  # type: ignore[arg-type]
            Controller(store, ["node1"]),  # type: ignore[arg-type]
            NoGateways(),  # type: ignore[arg-type]
            backoff=Backoff(initial=1.0, cap=8.0),
        )
        yield loop, store, kubelet


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("disk I/O error"),
        sqlite3.DatabaseError("database disk image is malformed"),
        StoreBusy("the store is locked by another writer"),
    ],
)
def test_store_errors_back_off_and_never_tear_down_pods(loop, error: Exception) -> None:
    loop, store, kubelet = loop
    assert loop.step() == TICK
    assert kubelet.synced == [["web"]]
    store.store.apply({**POD, "metadata": {**POD["metadata"], "labels": {"v": "2"}}})
    store.errors = [error, error, error]
    delays = [loop.step() for _ in range(3)]
    assert 0.5 <= delays[0] <= 1.0 < delays[1] <= 2.0 < delays[2] <= 4.0  # growing back-off
    assert kubelet.synced == [["web"]]  # no view from a failed listing reached the kubelet
    assert kubelet.shutdowns == 0
    assert kubelet.ticks == 4  # container supervision went on meanwhile
    assert loop.step() == TICK  # the store is back: the change is reconciled
    assert kubelet.synced == [["web"], ["web"]]
    assert loop.failures == 0


def test_a_failing_status_write_in_the_kubelet_is_retried_not_fatal(loop) -> None:
    loop, store, kubelet = loop
    kubelet.tick_errors = [sqlite3.OperationalError("database is locked")]
    assert loop.step() > TICK
    assert loop.step() == TICK
    assert kubelet.shutdowns == 0


def test_a_failed_reconcile_is_retried_even_without_a_new_revision(loop) -> None:
    loop, store, kubelet = loop
    calls = []

    class FlakyGateways:
        def reconcile(self, objs: Any, services: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise sqlite3.OperationalError("database is locked")

    loop.gateways = FlakyGateways()
    assert loop.step() > TICK
    assert kubelet.synced == [["web"]]  # the listing was complete: the kubelet got it
    assert loop.step() == TICK
    assert len(calls) == 2
