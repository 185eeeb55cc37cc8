import dataclasses
import itertools

from lab.controllers.deployment import TEMPLATE_HASH, orphans, plan_deployment, template_hash

from .factories import deployment, pod


def _counter():
    c = itertools.count()
    return lambda: f"{next(c):05d}"


def test_creates_missing_replicas_owned_and_labelled():
    d = deployment(replicas=2)
    plan = plan_deployment(d, [], suffix=_counter())
    assert len(plan.create) == 2 and plan.delete == ()
    first = plan.create[0]
    assert first["metadata"]["name"] == f"web-{template_hash(d)}-00000"
    assert first["metadata"]["labels"] == {"app": "web", TEMPLATE_HASH: template_hash(d)}
    assert first["metadata"]["ownerReferences"][0]["uid"] == "dep-1"
    assert plan.status["replicas"] == 0 and plan.status["conditions"][0]["status"] == "False"


def _owned(d, name, **kw):
    return pod(
        name, labels={"app": "web", TEMPLATE_HASH: template_hash(d)}, owner_uid="dep-1", **kw
    )


def test_scale_down_removes_not_ready_then_newest():
    d = deployment(replicas=1)
    old_ready = _owned(d, "a", node="node1", created="2026-11-22T09:00:00Z")
    new_ready = _owned(d, "b", node="node1", created="2026-11-22T10:00:00Z")
    not_ready = _owned(d, "c", node="node2", ready=False, created="2026-11-22T08:00:00Z")
    plan = plan_deployment(d, [old_ready, new_ready, not_ready])
    assert plan.create == ()
    assert [p.metadata.name for p in plan.delete] == ["c", "b"]


def test_status_counts_ready_pods_and_sets_available():
    d = deployment(replicas=2)
    pods = [_owned(d, "a", node="node1"), _owned(d, "b", node="node2")]
    plan = plan_deployment(d, pods)
    assert plan.status["readyReplicas"] == 2 and plan.status["observedGeneration"] == 3
    assert plan.status["conditions"][0] == {
        "type": "Available",
        "status": "True",
        "reason": "MinimumReplicasAvailable",
    }


def test_template_change_rolls_pods_only_after_new_ones_are_ready():
    old = deployment(image="tulle/echo:v1")
    new = deployment(image="tulle/echo:v2")
    assert template_hash(old) != template_hash(new)
    old_pods = [_owned(old, "a", node="node1"), _owned(old, "b", node="node2")]
    first = plan_deployment(new, old_pods, suffix=_counter())
    assert len(first.create) == 2 and first.delete == ()
    fresh = [_owned(new, "x", node="node1"), _owned(new, "y", node="node2")]
    second = plan_deployment(new, old_pods + fresh)
    assert sorted(p.metadata.name for p in second.delete) == ["a", "b"]


def test_pods_of_other_owners_are_ignored_and_orphans_found():
    d = deployment()
    stranger = pod("s", labels={"app": "web"}, owner_uid="other")
    plan = plan_deployment(d, [stranger], suffix=_counter())
    assert len(plan.create) == 2
    assert orphans([stranger, pod("bare")], {"dep-1"}) == [stranger]


def test_a_long_name_gives_pod_names_the_api_server_takes():
    """The base (name and template hash) is cut to 58 characters before the suffix, as
    generateName does: a Deployment named at the 253-character limit still gets Pods."""
    web = deployment(replicas=1)
    d = dataclasses.replace(web, metadata=dataclasses.replace(web.metadata, name="w" * 253))
    (body,) = plan_deployment(d, [], suffix=lambda: "00000").create
    assert body["metadata"]["name"] == "w" * 58 + "00000"
    assert len(body["metadata"]["name"]) == 63
