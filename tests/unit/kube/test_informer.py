"""The informer against a lab API server on loopback: no event missed or applied twice across
an API server restart and a forced 410 Gone, with concurrent writers (property test against
the writers' revision log)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import ConfigMap

from agent.kube.backoff import Backoff
from agent.kube.cache import Delta
from agent.kube.informer import Informer
from lab.store import Expired, Store
from tests.unit.kube.conftest import HISTORY, Lab

Entry = tuple[int, str, str]  # (revision, "namespace/name", type)


@dataclass
class Writer:
    """Writes a script of puts and deletes to its own names; logs what the store recorded."""

    store: Store
    prefix: str
    script: list[tuple[int, bool]]
    log: list[Entry] = field(default_factory=list)

    def step(self, i: int) -> None:
        index, delete = self.script[i]
        name = f"{self.prefix}{index}"
        if delete:
            gone = self.store.delete("ConfigMap", "default", name)
            if gone is not None:
                self.log.append(
                    (int(gone["metadata"]["resourceVersion"]), f"default/{name}", "DELETED")
                )
            return
        existed = self.store.get("ConfigMap", "default", name) is not None
        obj, _ = self.store.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"},
                "data": {"step": f"{self.prefix}{i}"},
            }
        )
        self.log.append(
            (
                int(obj["metadata"]["resourceVersion"]),
                f"default/{name}",
                "MODIFIED" if existed else "ADDED",
            )
        )


def _run_writers(writers: list[Writer], steps: range) -> None:
    threads = [
        threading.Thread(target=lambda w=w: [w.step(i) for i in steps if i < len(w.script)])
        for w in writers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _start_informer(
    lab: Lab,
) -> tuple[Informer[ConfigMap], list[Delta[ConfigMap]], threading.Thread]:
    deltas: list[Delta[ConfigMap]] = []
    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    informer = Informer(
        client, ConfigMap, on_delta=deltas.append, watch_timeout=2, backoff=Backoff(0.02, 0.2)
    )
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    assert informer.synced.wait(10)
    return informer, deltas, thread


def _wait_caught_up(informer: Informer[ConfigMap], store: Store) -> None:
    deadline = time.monotonic() + 20
    while informer.cache.revision < store.revision() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert informer.cache.revision >= store.revision()


def _store_state(store: Store) -> dict[str, int]:
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": int(
            o["metadata"]["resourceVersion"]
        )
        for o in store.list("ConfigMap")[0]
    }


def _cache_state(informer: Informer[ConfigMap]) -> dict[str, int]:
    return {
        f"{ns}/{name}": int(o.metadata.resourceVersion)
        for (ns, name), o in informer.cache.objects.items()
    }  # type: ignore[union-attr,arg-type]


def _entries(deltas: list[Delta[ConfigMap]]) -> list[Entry]:
    return [(d.revision, f"{d.key[0]}/{d.key[1]}", d.type) for d in deltas]


scripts = st.lists(st.tuples(st.integers(0, 4), st.booleans()), min_size=4, max_size=30)
SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(a=scripts, b=scripts)
def test_api_server_restart_misses_nothing_and_repeats_nothing(
    lab: Lab, a: list[tuple[int, bool]], b: list[tuple[int, bool]]
) -> None:
    for cm in lab.store.list("ConfigMap")[0]:  # hypothesis reuses the fixture
        lab.store.delete("ConfigMap", "default", cm["metadata"]["name"])
    informer, deltas, thread = _start_informer(lab)
    start = len(deltas)
    writers = [Writer(lab.store, "a", a), Writer(lab.store, "b", b)]
    try:
        half = max(len(a), len(b)) // 2
        # In two rounds, each caught up: a watch that lags a whole history behind gets 410
        # and relists (right, but not this test's case), as it could on a loaded machine
        # with up to 30 writes in one burst and a history of 30.
        for steps in (range(half // 2), range(half // 2, half)):
            _run_writers(writers, steps)
            _wait_caught_up(informer, lab.store)
        lab.stop()
        # A few writes while it is away: fewer than the history keeps, so the watch resumes.
        _run_writers(writers, range(half, half + 2))
        lab.start()
        _run_writers(writers, range(half + 2, 30))
        _wait_caught_up(informer, lab.store)
    finally:
        informer.stop()
        thread.join(10)
    log = sorted(writers[0].log + writers[1].log)
    assert informer.list_revisions[1:] == []  # resumed, never relisted
    assert _entries(deltas[start:]) == log  # every change once, in revision order
    assert _cache_state(informer) == _store_state(lab.store)


@SETTINGS
@given(a=scripts, b=scripts)
def test_forced_410_relists_without_applying_anything_twice(
    lab: Lab, a: list[tuple[int, bool]], b: list[tuple[int, bool]]
) -> None:
    for cm in lab.store.list("ConfigMap")[0]:
        lab.store.delete("ConfigMap", "default", cm["metadata"]["name"])
    informer, deltas, thread = _start_informer(lab)
    start = len(deltas)
    writers = [Writer(lab.store, "a", a), Writer(lab.store, "b", b)]
    try:
        _run_writers(writers, range(len(a) // 2 + 1))
        lab.stop()
        # More writes than the history keeps while it is away, so the resumed watch gets 410.
        # The scripts' own writes cannot promise that (a delete of a name not there writes
        # nothing, and the filler's steps run alongside theirs from len(a) // 2 + 1), so the
        # filler then writes one revision at a time until the revision the informer resumes
        # from is compacted: the store no longer holds the events after it.
        filler = Writer(lab.store, "f", [(i % 3, False) for i in range(30 + HISTORY + 1)])
        _run_writers([*writers, filler], range(len(a) // 2 + 1, 30))
        resume = informer.cache.revision  # the API server is down: it stays here
        for i in range(30, len(filler.script)):
            if lab.store.revision() - resume > HISTORY:
                break
            filler.step(i)
        with pytest.raises(Expired):  # a watch from ``resume`` must get 410 Gone
            lab.store.events_since(resume, ("ConfigMap",), limit=1)
        lab.start()
        _wait_caught_up(informer, lab.store)
    finally:
        informer.stop()
        thread.join(10)
    assert len(informer.list_revisions) >= 2  # it relisted
    relist = informer.list_revisions[-1]
    log = sorted(writers[0].log + writers[1].log + filler.log)
    applied = _entries(deltas[start:])
    # Each object's versions arrive once and in order.
    per_key: dict[str, list[int]] = {}
    for rev, key, _ in applied:
        per_key.setdefault(key, []).append(rev)
    assert all(revs == sorted(set(revs)) for revs in per_key.values())
    # Watched changes are the log's, once each; a relist may fold earlier ones into one
    # delta, never report one past its revision; after the relist the watch misses nothing.
    watched = [e for e, d in zip(applied, deltas[start:], strict=True) if not d.resync]
    assert set(watched) <= set(log) and len(set(watched)) == len(watched)
    assert all(d.revision <= relist for d in deltas[start:] if d.resync)
    assert [e for e in log if e[0] > relist] == [e for e in applied if e[0] > relist]
    assert _cache_state(informer) == _store_state(lab.store)
