"""What the informer keeps of each object: no metadata.managedFields (no Tulle process reads
it; it is half a Service's memory), from the list and from the watch alike; and cyclic GC
paused while a list page decodes, without leaving it off."""

from __future__ import annotations

import gc
import threading
import time

from lightkube import Client, KubeConfig

from agent.kube import gcpause
from agent.kube.informer import Informer
from agent.kube.resources import resource_for
from tests.unit.kube.conftest import Lab

MANAGED = [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {}}}}]


def service(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "managedFields": MANAGED,
                         "labels": {"app": name}},
            "spec": {"clusterIP": "10.96.0.50", "ports": [{"port": 80, "protocol": "TCP"}]}}


def test_listed_and_watched_objects_carry_no_managed_fields(lab: Lab) -> None:
    lab.store.apply(service("listed"))
    assert lab.store.get("Service", "default", "listed")["metadata"]["managedFields"]  # type: ignore[index]
    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    informer = Informer(client, resource_for("Service"), watch_timeout=2)
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    try:
        assert informer.synced.wait(10)
        lab.store.apply(service("watched"))
        deadline = time.monotonic() + 10
        while ("default", "watched") not in informer.cache.objects:
            assert time.monotonic() < deadline, "the watched Service never arrived"
            time.sleep(0.02)
        for name in ("listed", "watched"):
            meta = informer.cache.objects[("default", name)]["metadata"]
            assert "managedFields" not in meta
            assert meta["labels"] == {"app": name} and meta["resourceVersion"]
    finally:
        informer.stop()
        thread.join(5)


def test_gc_pauses_nest_across_threads_and_restore_the_collector() -> None:
    assert gc.isenabled()
    inner_started, release = threading.Event(), threading.Event()

    def other() -> None:
        with gcpause.paused():
            inner_started.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    with gcpause.paused():
        thread.start()
        assert inner_started.wait(5)
    assert not gc.isenabled()  # the other thread's pause is still on
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with gcpause.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
