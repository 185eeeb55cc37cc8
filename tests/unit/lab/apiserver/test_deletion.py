"""Finalizers hold a deleted object until removed; Orphan deletion frees the dependents."""

from __future__ import annotations

from tests.unit.lab.apiserver.conftest import Client, configmap

CMS = "/api/v1/namespaces/default/configmaps"
MERGE = "application/merge-patch+json"


def _with_finalizer(name: str = "held") -> dict:
    obj = configmap(name)
    obj["metadata"]["finalizers"] = ["tulle.dev/cleanup"]
    return obj


def test_finalizers_hold_a_deleted_object_until_they_are_removed(client: Client) -> None:
    client.request("POST", CMS, _with_finalizer())
    first = client.request("DELETE", f"{CMS}/held")
    assert first.status == 200 and first.body["metadata"]["deletionTimestamp"]
    held = client.get(f"{CMS}/held")
    assert held.status == 200 and held.body["metadata"]["deletionTimestamp"]
    again = client.request("DELETE", f"{CMS}/held")  # deleting again changes nothing
    assert again.body["metadata"]["resourceVersion"] == held.body["metadata"]["resourceVersion"]
    released = client.request(
        "PATCH", f"{CMS}/held", {"metadata": {"finalizers": None}}, ctype=MERGE
    )
    assert released.status == 200
    assert client.get(f"{CMS}/held").status == 404


def test_no_finalizer_may_be_added_while_deleting(client: Client) -> None:
    client.request("POST", CMS, _with_finalizer())
    client.request("DELETE", f"{CMS}/held")
    reply = client.request(
        "PATCH",
        f"{CMS}/held",
        {"metadata": {"finalizers": ["a", "tulle.dev/cleanup"]}},
        ctype=MERGE,
    )
    assert reply.status == 422 and "no new finalizers" in reply.body["message"]


def test_clients_cannot_set_or_clear_the_deletion_timestamp(client: Client) -> None:
    obj = configmap("c")
    obj["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
    created = client.request("POST", CMS, obj).body
    assert "deletionTimestamp" not in created["metadata"]
    client.request("POST", CMS, _with_finalizer())
    client.request("DELETE", f"{CMS}/held")
    cleared = client.request(
        "PATCH",
        f"{CMS}/held",
        {"metadata": {"deletionTimestamp": None, "labels": {"a": "b"}}},
        ctype=MERGE,
    )
    assert cleared.body["metadata"]["deletionTimestamp"]


def test_orphan_propagation_strips_owner_references(client: Client) -> None:
    owner = client.request("POST", CMS, configmap("owner")).body
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other-uid"}
    dependent = configmap("dependent")
    dependent["metadata"]["ownerReferences"] = [ref, other]
    client.request("POST", CMS, dependent)
    reply = client.request("DELETE", f"{CMS}/owner", {"propagationPolicy": "Orphan"})
    assert reply.status == 200
    assert client.get(f"{CMS}/dependent").body["metadata"]["ownerReferences"] == [other]


def test_unknown_propagation_policy_is_400(client: Client) -> None:
    client.request("POST", CMS, configmap("c"))
    assert client.request("DELETE", f"{CMS}/c", {"propagationPolicy": "Sideways"}).status == 400
    assert client.get(f"{CMS}/c").status == 200
