"""The cluster source against a lab API server on loopback: one informer per kind into one
state; a relist of one kind leaves every other kind's objects in place; the API server away
at start and restarted under it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.kube.backoff import Backoff
from agent.kube.cache import Delta
from agent.kube.informer import Informer
from agent.kube.resources import generic_resource
from agent.kube.source import ClusterSource, KubeconfigError, connect
from agent.kube.state import ClusterState
from lab.store import Store
from tests.unit.kube.conftest import HISTORY, Lab

FAST = Backoff(0.02, 0.2)


def service(name: str, ip: str = "10.96.0.10") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"port": 80}]},
    }


def pod(name: str, step: int = 0) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"step": str(step)}},
        "spec": {"containers": [{"name": "c", "image": "echo"}]},
    }


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def names(source: ClusterSource, kind: str) -> set[str]:
    with source.lock:
        return {o["metadata"]["name"] for o in source.state.of_kind(kind)}


def caught_up(source: ClusterSource, store: Store) -> Callable[[], bool]:
    def check() -> bool:
        with source.lock:
            return source.state.synced and all(
                i.cache.revision >= store.revision() for i in source.informers
            )

    return check


@pytest.fixture
def started(lab: Lab) -> Iterator[Callable[..., ClusterSource]]:
    sources: list[ClusterSource] = []

    def start(kinds: tuple[str, ...], on_change: Any = None) -> ClusterSource:
        source = ClusterSource(
            connect(lab.kubeconfig), kinds, on_change, watch_timeout=2, backoff=FAST
        ).start()
        sources.append(source)
        return source

    yield start
    for source in sources:
        source.stop()


def test_every_kind_is_listed_then_followed_into_one_state(
    lab: Lab, started: Callable[..., ClusterSource]
) -> None:
    lab.store.apply(service("web"))
    lab.store.apply(pod("web-1"))
    source = started(("Service", "Pod", "Namespace"))
    wait_for(lambda: source.synced, "the first sync")
    with source.lock:
        web = source.state.get("Service", "default", "web")
        assert web is not None and (web["kind"], web["apiVersion"]) == ("Service", "v1")
        assert source.state.get("Namespace", "", "kube-system") is not None
    assert names(source, "Pod") == {"web-1"}
    lab.store.apply(pod("web-2"))
    lab.store.delete("Pod", "default", "web-1")
    wait_for(lambda: names(source, "Pod") == {"web-2"}, "the watched changes")
    assert names(source, "Service") == {"web"}


def test_a_relist_of_one_kind_keeps_every_other_kind(
    lab: Lab, started: Callable[..., ClusterSource]
) -> None:
    # No bookmarks: a quiet kind's watch stays at its list revision while another kind's
    # writes go by, so after more than the history keeps, only the quiet kind gets 410.
    lab.stop()
    lab.bookmark_interval = 3600.0
    lab.start()
    lab.store.apply(service("web"))
    lab.store.apply(service("api", "10.96.0.11"))
    lab.store.apply(pod("web-1"))
    seen: list[set[str]] = []  # the Services in the state at each change after the sync
    holder: list[ClusterSource] = []  # changes may arrive before started() returns

    def on_change(_kind: str, _delta: Delta[Any] | None) -> None:
        if holder and holder[0].state.synced:
            seen.append({k[2] for k in holder[0].state.objects if k[0] == "Service"})

    source = started(("Service", "Pod"), on_change)
    holder.append(source)
    wait_for(lambda: source.synced, "the first sync")
    services, pods = source.informers
    for step in range(HISTORY + 5):  # paced: the Pod watch keeps up, never 410
        lab.store.apply(pod("web-1", step))
        if step % 10 == 9:
            wait_for(lambda: pods.cache.revision >= lab.store.revision(), "the pod watch")
    wait_for(lambda: pods.cache.revision >= lab.store.revision(), "the pod watch")
    lab.stop()
    lab.store.delete("Service", "default", "api")  # while away: only a relist can show it
    lab.store.apply(pod("web-2"))
    lab.start()
    wait_for(caught_up(source, lab.store), "both kinds after the restart")
    assert len(services.list_revisions) == 2  # Services: 410, relisted
    assert len(pods.list_revisions) == 1  # Pods: resumed where they were
    assert names(source, "Service") == {"web"}
    assert names(source, "Pod") == {"web-1", "web-2"}
    with source.lock:
        assert source.state.get("Pod", "default", "web-1")["metadata"]["labels"] == {
            "step": str(HISTORY + 4)
        }
    # Until the Service relist deleted "api", every change saw both Services.
    before_delete = [svcs for svcs in seen if "api" in svcs]
    assert len(before_delete) > HISTORY and all(svcs == {"web", "api"} for svcs in before_delete)
    assert seen[-1] == {"web"}


def test_the_api_server_away_at_start_then_restarted(
    lab: Lab, started: Callable[..., ClusterSource]
) -> None:
    lab.stop()
    lab.store.apply(service("web"))
    source = started(("Service", "Pod"))
    time.sleep(0.5)
    assert not source.synced  # nothing to go on yet: consumers wait
    lab.start()
    wait_for(lambda: source.synced, "the sync once the API server is up")
    assert names(source, "Service") == {"web"}
    lab.stop()
    lab.store.apply(pod("web-1"))
    time.sleep(0.3)
    lab.start()
    wait_for(lambda: names(source, "Pod") == {"web-1"}, "the change made while it was away")
    assert names(source, "Service") == {"web"}


def test_a_kind_the_server_does_not_serve_is_empty_and_synced(lab: Lab) -> None:
    Widget = generic_resource("example.com/v1", "widgets", "Widget", namespaced=True)

    informer: Informer[Any] = Informer(connect(lab.kubeconfig), Widget, backoff=FAST)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        assert informer.synced.wait(10)
        assert informer.cache.objects == {}
    finally:
        informer.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_state_relist_of_one_kind_replaces_only_that_kind() -> None:
    from agent.kube.cache import Cache

    state = ClusterState(("Service", "Pod"))
    caches = {"Service": Cache[dict[str, Any]](), "Pod": Cache[dict[str, Any]]()}

    def listed(kind: str, objs: list[dict[str, Any]], revision: int) -> None:
        for delta in caches[kind].replace(objs, revision):
            state.apply(kind, delta)
        state.mark_listed(kind, revision)

    def versioned(obj: dict[str, Any], rev: int) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj

    listed("Service", [versioned(service("web"), 1)], 2)
    assert not state.synced
    listed("Pod", [versioned(pod("a"), 2), versioned(pod("b"), 2)], 2)
    assert state.synced
    listed("Pod", [versioned(pod("b"), 2)], 5)  # a relist: "a" went meanwhile
    assert sorted(state.objects) == [("Pod", "default", "b"), ("Service", "default", "web")]
    assert state.revision == 5


def test_connect_names_a_missing_kubeconfig(tmp_path: Path) -> None:
    missing = tmp_path / "nope.kubeconfig"
    with pytest.raises(KubeconfigError, match=f"--kubeconfig {missing}"):
        connect(missing)


def test_connect_without_a_kubeconfig_outside_a_pod_says_what_to_pass() -> None:
    with pytest.raises(KubeconfigError, match="Pass --kubeconfig"):
        connect(None)
