"""A cluster without the Gateway API CRDs (a real one without Gateway API, or a CRD deleted):
the informers of those kinds count them as empty and synced, retry with back-off, say so in
the log once per absence (not per retry), and pick the kind up once its CRD is established."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from agent.kube.backoff import Backoff
from agent.kube.informer import Informer
from agent.kube.resources import resource_for
from agent.kube.source import ClusterSource
from lab.apiserver import deletion
from lab.apiserver.crds import install_gateway_api
from lab.apiserver.resources import BUILTIN
from lab.apiserver.routing import Target
from lab.store import Store
from tests.unit.kube.conftest import Lab, RecordingStop, serve_lab

FAST = Backoff(0.01, 0.05)
ROUTES_CRD = "httproutes.gateway.networking.k8s.io"


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Lab]:
    """A lab API server whose cluster has no Gateway API CRDs."""
    yield from serve_lab(tmp_path, gateway_api=False)


def _route(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"hostnames": [f"{name}.example"]},
    }


def _until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class CountingInformer(Informer[Any]):
    """Counts full lists, so a test can wait for retries rather than for time."""

    lists = 0

    def _list(self) -> bool:
        self.lists += 1
        return super()._list()


def _delete_crd(store: Store, name: str) -> None:
    res = BUILTIN.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert res is not None
    deletion.delete(store, Target(res, "v1", None, name), {})


def _not_served_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "not served" in r.getMessage()]


def test_an_unserved_kind_is_empty_and_synced_logged_once_and_picked_up_later(
    bare: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.kube.informer")
    client = Client(config=KubeConfig.from_file(bare.kubeconfig), timeout=10)
    informer = CountingInformer(client, resource_for("HTTPRoute"), watch_timeout=1, backoff=FAST)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        _until(lambda: informer.synced.is_set() and informer.lists >= 5, "five lists")
        assert informer.cache.objects == {}
        assert len(_not_served_lines(caplog)) == 1
        install_gateway_api(bare.store)
        bare.store.create(_route("shop"))
        _until(lambda: len(informer.cache.objects) == 1, "the route after its CRD")
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert not [w for w in warnings if "retrying" in w], warnings
    finally:
        informer.stop()
        thread.join(5)


def test_an_unserved_kind_is_reported_listed_once_per_absence_not_per_retry(
    lab: Lab,
) -> None:
    """Old behaviour: every retry of an unserved kind reported a list (the agent logged
    "listed HTTPRoute: 0" and woke its sync loop every 0.1-10 s)."""
    lab.store.create(_route("shop"))
    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    listed: list[int] = []
    informer = CountingInformer(client, resource_for("HTTPRoute"), watch_timeout=1,
                                backoff=FAST, on_listed=listed.append)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        _until(lambda: len(informer.cache.objects) == 1, "the route")
        assert len(listed) == 1
        _delete_crd(lab.store, ROUTES_CRD)
        _until(lambda: informer._served is False, "the kind found not served")
        reported, gone = len(listed), informer.lists
        _until(lambda: informer.lists >= gone + 5, "lists of the unserved kind")
        assert len(listed) == reported  # the list that found it gone, and no retry
        install_gateway_api(lab.store)
        lab.store.create(_route("again"))
        _until(lambda: set(informer.cache.objects) == {("default", "again")}, "the new route")
        assert len(listed) == reported + 1
    finally:
        informer.stop()
        thread.join(5)


def test_an_unserved_kind_is_looked_at_again_later_than_after_a_failure(bare: Lab) -> None:
    """Old behaviour: the first look again came after the first failure's delay (0.05-0.1 s
    with the agent's back-off): a first sync's lists shared the API server with 4 unserved
    kinds asked 5 times each. Now the looks start at the back-off's fourth step."""
    client = Client(config=KubeConfig.from_file(bare.kubeconfig), timeout=10)
    backoff = Backoff(0.01, 1.0)
    informer = CountingInformer(client, resource_for("HTTPRoute"), watch_timeout=1,
                                backoff=backoff)
    stop = informer._stop = RecordingStop()
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        _until(lambda: len(stop.waits) >= 2, "two looks again")
        first, second = stop.waits[:2]
        assert first is not None and second is not None
        assert backoff.initial * 8 / 2 <= first <= backoff.initial * 8
        assert backoff.initial * 16 / 2 <= second <= backoff.initial * 16
        assert informer.synced.is_set()  # empty and synced meanwhile
    finally:
        informer.stop()
        thread.join(5)


def test_a_deleted_crd_empties_the_kind_without_a_warning_per_retry_and_it_comes_back(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    """Old behaviour: a watch answered 404 was retried as a failure forever (a warning each
    time, never relisting), so the kind's absence was never noticed as such."""
    caplog.set_level(logging.INFO, logger="agent.kube.informer")
    lab.store.create(_route("shop"))
    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    informer = CountingInformer(client, resource_for("HTTPRoute"), watch_timeout=1, backoff=FAST)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        _until(lambda: len(informer.cache.objects) == 1, "the route")
        _delete_crd(lab.store, ROUTES_CRD)
        _until(lambda: not informer.cache.objects, "the route to go with its CRD")
        listed = informer.lists
        _until(lambda: informer.lists >= listed + 5, "lists of the unserved kind")
        assert len(_not_served_lines(caplog)) == 1
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert not [w for w in warnings if "retrying" in w], warnings
        install_gateway_api(lab.store)
        lab.store.create(_route("again"))
        _until(lambda: set(informer.cache.objects) == {("default", "again")}, "the new route")
    finally:
        informer.stop()
        thread.join(5)


def test_a_source_is_synced_on_a_cluster_without_gateway_api(bare: Lab) -> None:
    client = Client(config=KubeConfig.from_file(bare.kubeconfig), timeout=10)
    source = ClusterSource(client, ["Service", "HTTPRoute", "Gateway"], backoff=FAST).start()
    try:
        _until(lambda: source.synced, "the source to sync")
        install_gateway_api(bare.store)
        bare.store.create(_route("shop"))
        _until(lambda: source.state.get("HTTPRoute", "default", "shop") is not None, "the route")
    finally:
        source.stop()
