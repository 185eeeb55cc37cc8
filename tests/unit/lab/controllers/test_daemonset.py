"""The DaemonSet planner (pure): one pod per node, rolling updates within maxUnavailable
node by node, OnDelete, status as upstream, nodeSelector, and the DaemonSets it refuses.

Pods are made from the plan's own create bodies (as the API server would store them), so a
test drives the planner round after round like the controller does."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab.controllers.daemonset import (
    REVISION_HASH,
    DaemonSet,
    InvalidDaemonSet,
    orphans,
    plan_daemonset,
    read_daemonset,
    template_hash,
)

NODES = {n: {"kubernetes.io/hostname": n, "kubernetes.io/os": "linux"} for n in ("a", "b", "c")}


def ds_obj(image: str = "v1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "sys", "uid": "ds-1", "generation": 4},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"hostNetwork": True,
                         "containers": [{"name": "c", "image": image, "command": ["x"]}]},
            },
            **spec,
        },
    }


def daemonset(image: str = "v1", **spec: Any) -> DaemonSet:
    return read_daemonset(ds_obj(image, **spec))


class Cluster:
    """The pods the API server holds, fed by plans; names and creation order as served."""

    def __init__(self) -> None:
        self.pods: dict[str, Pod] = {}
        self.seq = itertools.count()

    def apply(self, ds: DaemonSet) -> tuple[list[str], list[str]]:
        plan = plan_daemonset(ds, NODES, list(self.pods.values()), suffix=self._suffix)
        for victim in plan.delete:
            del self.pods[victim.metadata.name]
        for body in plan.create:
            self.add(body, ready=False)
        created = sorted(b["spec"]["nodeName"] for b in plan.create)
        deleted = sorted(p.spec.node_name or "" for p in plan.delete)
        return created, deleted

    def _suffix(self) -> str:
        return f"{next(self.seq):05d}"

    def add(self, body: dict[str, Any], *, ready: bool, phase: str = "Running") -> Pod:
        obj = copy.deepcopy(body)
        n = len(self.pods) + next(self.seq)
        obj["metadata"].update(uid=f"uid-{obj['metadata']['name']}",
                               creationTimestamp=f"2026-12-06T10:{n % 60:02d}:00Z")
        obj["status"] = {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}]}
        pod = from_dict(obj)
        assert isinstance(pod, Pod)
        self.pods[obj["metadata"]["name"]] = pod
        return pod

    def set_ready(self, node: str) -> None:
        for name, pod in list(self.pods.items()):
            if pod.spec.node_name == node:
                body = {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": pod.metadata.namespace,
                                     "labels": dict(pod.metadata.labels),
                                     "ownerReferences": [{"apiVersion": "apps/v1",
                                                          "kind": "DaemonSet", "name": "agent",
                                                          "uid": "ds-1", "controller": True}]},
                        "spec": {"nodeName": node, "containers": [{"name": "c"}]}}
                del self.pods[name]
                self.add(body, ready=True)

    def on(self, node: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.spec.node_name == node]

    def ready_nodes(self) -> set[str]:
        return {p.spec.node_name or "" for p in self.pods.values()
                if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)}


def running(ds: DaemonSet) -> Cluster:
    cluster = Cluster()
    cluster.apply(ds)
    for node in NODES:
        cluster.set_ready(node)
    return cluster


def test_one_pod_per_node_named_owned_labelled_and_bound():
    ds = daemonset()
    plan = plan_daemonset(ds, NODES, [], suffix=lambda: "x1")
    assert sorted(b["spec"]["nodeName"] for b in plan.create) == ["a", "b", "c"]
    body = plan.create[0]
    assert body["metadata"]["name"] == "agent-x1"
    assert body["metadata"]["labels"] == {"app": "agent", REVISION_HASH: template_hash(ds)}
    owner = body["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("DaemonSet", "ds-1", True)
    assert body["spec"]["hostNetwork"] is True
    assert plan.status["desiredNumberScheduled"] == 3
    assert plan.status["currentNumberScheduled"] == 0


def test_status_counts_as_upstream():
    ds = daemonset()
    cluster = Cluster()
    cluster.apply(ds)
    cluster.set_ready("a")
    status = plan_daemonset(ds, NODES, list(cluster.pods.values())).status
    assert status == {
        "desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberMisscheduled": 0,
        "numberReady": 1, "numberAvailable": 1, "numberUnavailable": 2,
        "updatedNumberScheduled": 3, "observedGeneration": 4,
    }


def test_steady_state_plans_nothing_and_a_deleted_pod_comes_back_on_its_node():
    ds = daemonset()
    cluster = running(ds)
    assert cluster.apply(ds) == ([], [])
    del cluster.pods[cluster.on("b")[0].metadata.name]
    assert cluster.apply(ds) == (["b"], [])


def test_node_selector_on_hostname_limits_the_nodes():
    ds = daemonset()
    obj = ds_obj()
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "b"}
    only_b = read_daemonset(obj)
    fresh = Cluster()
    assert fresh.apply(only_b) == (["b"], [])
    status = plan_daemonset(only_b, NODES, list(fresh.pods.values())).status
    assert status["desiredNumberScheduled"] == 1
    # On a running DaemonSet: a and c no longer qualify; b's pod has the old template, so it
    # rolls too (the misscheduled nodes are not the DaemonSet's to keep available).
    assert running(ds).apply(only_b) == ([], ["a", "b", "c"])


def test_extra_failed_and_misplaced_pods_are_deleted():
    ds = daemonset()
    cluster = running(ds)
    body = plan_daemonset(ds, NODES, [], suffix=lambda: "dup").create[0]
    extra = cluster.add({**body, "spec": {**body["spec"], "nodeName": "a"}}, ready=True)
    gone_node = cluster.add({**body, "metadata": {**body["metadata"], "name": "agent-old"},
                             "spec": {**body["spec"], "nodeName": "retired"}}, ready=True)
    plan = plan_daemonset(ds, NODES, list(cluster.pods.values()))
    assert {p.metadata.name for p in plan.delete} == {extra.metadata.name,
                                                      gone_node.metadata.name}
    assert plan.status["numberMisscheduled"] == 1
    failed = cluster.add({**body, "metadata": {**body["metadata"], "name": "agent-f"},
                          "spec": {**body["spec"], "nodeName": "z"}}, ready=False,
                         phase="Failed")
    assert failed in plan_daemonset(ds, NODES, list(cluster.pods.values())).delete


def test_rolling_update_goes_node_by_node_once_the_replaced_one_is_ready():
    cluster = running(daemonset("v1"))
    new = daemonset("v2")
    order = []
    for _ in range(10):
        created, deleted = cluster.apply(new)
        assert len(deleted) <= 1 and len(NODES) - len(cluster.ready_nodes()) <= 1
        order += deleted
        for node in created:
            assert cluster.apply(new) == ([], [])  # the new pod is not ready: wait
            cluster.set_ready(node)
    assert order == ["a", "b", "c"]
    assert {p.metadata.labels[REVISION_HASH] for p in cluster.pods.values()} == {
        template_hash(new)}
    status = plan_daemonset(new, NODES, list(cluster.pods.values())).status
    assert status["updatedNumberScheduled"] == 3 and status["numberAvailable"] == 3


@pytest.mark.parametrize(("max_unavailable", "at_once"), [(2, 2), ("50%", 2), ("34%", 2),
                                                          ("10%", 1), (5, 3)])
def test_max_unavailable_bounds_how_many_nodes_roll_at_once(max_unavailable, at_once):
    cluster = running(daemonset("v1"))
    new = daemonset("v2", updateStrategy={"type": "RollingUpdate",
                                          "rollingUpdate": {"maxUnavailable": max_unavailable}})
    _, deleted = cluster.apply(new)
    assert len(deleted) == at_once


def test_an_unavailable_old_pod_is_replaced_outside_the_budget():
    ds = daemonset("v1")
    cluster = Cluster()
    cluster.apply(ds)
    cluster.set_ready("a")
    cluster.set_ready("b")  # c's old pod never became ready
    _, deleted = cluster.apply(daemonset("v2"))
    assert deleted == ["a", "c"]


def test_on_delete_replaces_only_deleted_pods_with_the_new_template():
    cluster = running(daemonset("v1"))
    new = daemonset("v2", updateStrategy={"type": "OnDelete"})
    assert cluster.apply(new) == ([], [])
    del cluster.pods[cluster.on("c")[0].metadata.name]
    assert cluster.apply(new) == (["c"], [])
    assert cluster.on("c")[0].metadata.labels[REVISION_HASH] == template_hash(new)
    assert cluster.on("a")[0].metadata.labels[REVISION_HASH] == template_hash(daemonset("v1"))
    status = plan_daemonset(new, NODES, list(cluster.pods.values())).status
    assert status["updatedNumberScheduled"] == 1


def test_orphans_are_pods_of_a_deleted_daemonset():
    cluster = running(daemonset())
    pods = list(cluster.pods.values())
    assert orphans(pods, {"ds-1"}) == []
    assert sorted(p.spec.node_name or "" for p in orphans(pods, set())) == ["a", "b", "c"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda o: o["spec"].pop("selector"), "spec.selector: required"),
    (lambda o: o["spec"].update(selector={"matchLabels": {"app": "other"}}),
     "spec.template.metadata.labels: `selector` does not match template `labels`"),
    (lambda o: o["spec"].update(updateStrategy={"type": "Recreate"}),
     'spec.updateStrategy.type: unsupported value "Recreate"'),
    (lambda o: o["spec"].update(updateStrategy={"rollingUpdate": {"maxUnavailable": -1}}),
     "spec.updateStrategy.rollingUpdate.maxUnavailable: must be greater than or equal to 0"),
    (lambda o: o["spec"].update(updateStrategy={"rollingUpdate": {"maxUnavailable": "x"}}),
     'maxUnavailable: invalid value "x"'),
    (lambda o: o["spec"].update(updateStrategy={"rollingUpdate": {"maxUnavailable": 0}}),
     "may not be 0 when maxSurge is 0"),
    (lambda o: o["spec"]["template"]["spec"].update(restartPolicy="Never"),
     'spec.template.spec.restartPolicy: unsupported value "Never"'),
    (lambda o: o["spec"]["template"]["spec"].update(containers=[]),
     "spec.template: Pod sys/template: spec.containers"),
])
def test_invalid_daemonsets_are_refused_by_name_and_field(change, message):
    obj = ds_obj()
    change(obj)
    with pytest.raises(InvalidDaemonSet, match="^DaemonSet sys/agent: ") as err:
        read_daemonset(obj)
    assert message in str(err.value)


def test_a_long_name_gives_pod_names_the_api_server_takes():
    """As generateName does: the base is cut to 58 characters before the suffix, so a
    DaemonSet named at the 253-character limit still gets valid Pods."""
    obj = ds_obj()
    obj["metadata"]["name"] = "d" * 253
    plan = plan_daemonset(read_daemonset(obj), NODES, [], suffix=lambda: "x1a2b")
    names = {b["metadata"]["name"] for b in plan.create}
    assert names == {"d" * 58 + "x1a2b"}
