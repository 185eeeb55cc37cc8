"""The lab controller as a Kubernetes client: against a real lab API server on loopback, as
the controller ServiceAccount (so every write it makes is also an RBAC check)."""

from __future__ import annotations

import time
from typing import Any

from lab.controllers.manager import TICK
from lab.kubeapi import Conflict
from tests.unit.lab.apilab import ApiLab, parts


def deployment(name: str = "web", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "echo", "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def service(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def test_a_deployment_becomes_bound_pods_an_endpointslice_and_status(apilab: ApiLab) -> None:
    created = apilab.store.create(deployment())
    svc = apilab.store.create(service())
    p = parts(apilab)
    try:
        p.settle(
            lambda: (
                len(apilab.objects("EndpointSlice")) == 1
                and len(apilab.objects("EndpointSlice")[0]["endpoints"]) == 2
            )
        )
        pods = apilab.objects("Pod")
        assert len(pods) == 2
        for pod in pods:
            assert pod["spec"]["nodeName"] in ("node1", "node2")
            (ref,) = pod["metadata"]["ownerReferences"]
            assert ref == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        (slc,) = apilab.objects("EndpointSlice")
        assert slc["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
        assert slc["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
        assert sorted(e["addresses"][0] for e in slc["endpoints"]) == sorted(
            p.kubelet.reported.values()
        )
        events = apilab.objects("Event")
        for pod in pods:
            name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
            assert {
                "reason": "Scheduled",
                "message": f"Successfully assigned default/{name} to {node}",
                "uid": pod["metadata"]["uid"],
            } in [
                {"reason": e["reason"], "message": e["message"], "uid": e["involvedObject"]["uid"]}
                for e in events
            ]
        created_events = [e for e in events if e["reason"] == "SuccessfulCreate"]
        assert len(created_events) == 2
        assert {e["involvedObject"]["name"] for e in created_events} == {"web"}
        p.settle(
            lambda: (
                (apilab.store.get("Deployment", "default", "web") or {})
                .get("status", {})
                .get("readyReplicas")
                == 2
            )
        )
        # Settled: further rounds write nothing (no churn of revisions).
        for _ in range(5):
            p.loop.step()
            time.sleep(0.05)
        before = apilab.store.revision()
        for _ in range(10):
            assert p.loop.step() == TICK
            time.sleep(0.02)
        assert apilab.store.revision() == before
        # Scaled down through the API: one pod goes, the slice follows.
        apilab.store.apply({**deployment(replicas=1)})
        p.settle(
            lambda: (
                len(apilab.objects("Pod")) == 1
                and len(apilab.objects("EndpointSlice")[0]["endpoints"]) == 1
            )
        )
        # The Service goes: its slice goes too; the Deployment goes: its pods go.
        apilab.store.delete("Service", "default", "web")
        apilab.store.delete("Deployment", "default", "web")
        p.settle(lambda: not apilab.objects("EndpointSlice") and not apilab.objects("Pod"))
    finally:
        assert p.informers is not None
        p.informers.stop()


def test_its_own_writes_count_before_the_watch_brings_them(apilab: ApiLab) -> None:
    """Without informers (the watch never brings anything), back-to-back rounds still create
    each replica once: the API's answer to a create is in the view at once."""
    apilab.store.create(deployment(replicas=3))
    p = parts(apilab, informers=False)
    p.view.observe("Deployment", apilab.store.get("Deployment", "default", "web") or {})
    for _ in range(4):
        assert p.loop.step() == TICK
    pods = apilab.objects("Pod")
    assert len(pods) == 3
    assert all(pod["spec"].get("nodeName") for pod in pods)  # bound in the next round


def test_a_bind_that_lost_a_race_is_retried_from_the_current_pod(apilab: ApiLab) -> None:
    apilab.store.create(deployment(replicas=1))
    p = parts(apilab, informers=False)
    p.view.observe("Deployment", apilab.store.get("Deployment", "default", "web") or {})
    assert p.loop.step() == TICK  # creates the pod; the view holds the API's answer
    (pod,) = apilab.objects("Pod")
    # Someone else changes the pod; the view still holds the older version.
    pod["metadata"]["labels"]["touched"] = "yes"
    apilab.store.update(pod)
    assert p.loop.step() == TICK  # the bind gets 409: no error, the view refreshed
    held = p.view.get("Pod", "default", pod["metadata"]["name"])
    assert held is not None and held["metadata"]["labels"]["touched"] == "yes"
    assert p.loop.step() == TICK
    (bound,) = apilab.objects("Pod")
    assert bound["spec"]["nodeName"] in ("node1", "node2")
    assert bound["metadata"]["labels"]["touched"] == "yes"  # the other writer's change stays


def test_an_update_at_an_old_version_raises_conflict_and_refreshes(apilab: ApiLab) -> None:
    p = parts(apilab, informers=False)
    svc_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "solo", "namespace": "default"},
        "spec": {"containers": [{"name": "c"}]},
    }
    old = p.api.create(svc_pod)
    apilab.store.update({**old, "metadata": {**old["metadata"], "labels": {"x": "1"}}})
    try:
        p.api.update({**old, "spec": {**old["spec"], "nodeName": "node1"}})
    except Conflict:
        pass
    else:
        raise AssertionError("an update at an old resourceVersion must not win")
    held = p.view.get("Pod", "default", "solo")
    assert held is not None and held["metadata"]["labels"] == {"x": "1"}


def test_api_server_away_keeps_pods_backs_off_and_catches_up(apilab: ApiLab) -> None:
    apilab.store.create(deployment(replicas=1))
    p = parts(apilab)
    try:
        p.settle(lambda: len(p.kubelet.reported) == 1)
        ran = p.kubelet.synced[-1]
        assert ran
        apilab.stop()
        apilab.store.apply(deployment(replicas=2))  # a change while the API server is away
        p.kubelet.tick_errors = [ConnectionRefusedError("the API server is away")] * 3
        delays = [p.loop.step() for _ in range(3)]
        assert all(d > TICK * 0 for d in delays) and p.loop.failures == 3
        assert p.kubelet.shutdowns == 0
        assert all(names == ran for names in p.kubelet.synced[-1:])  # nothing torn down
        apilab.start()
        p.settle(
            lambda: len(apilab.objects("Pod")) == 2 and len(p.kubelet.reported) == 2, timeout=20
        )
        assert p.loop.failures == 0
    finally:
        assert p.informers is not None
        p.informers.stop()
