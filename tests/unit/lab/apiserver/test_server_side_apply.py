"""Server-side apply with field ownership: removal of dropped fields, conflicts, force."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from lab.apiserver import fieldsets
from tests.unit.lab.apiserver.conftest import Client

DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def _deployment(labels: dict[str, str], env: list[str], replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "echo",
                            "env": [{"name": n, "value": "1"} for n in env],
                        }
                    ]
                },
            },
        },
    }


def _apply(client: Client, obj: dict[str, Any], manager: str = "ci", force: bool = False):
    query = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return client.request("PATCH", f"{DEPLOYS}/web", obj, ctype=APPLY, query=query)


def test_apply_creates_and_records_the_manager(client: Client) -> None:
    reply = _apply(client, _deployment({"team": "a"}, ["A"]))
    assert reply.status == 200
    (entry,) = reply.body["metadata"]["managedFields"]
    assert entry["manager"] == "ci" and entry["operation"] == "Apply"
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]


def test_fields_dropped_from_the_configuration_are_removed(client: Client) -> None:
    _apply(client, _deployment({"team": "a", "extra": "x"}, ["A", "B"]))
    reply = _apply(client, _deployment({"team": "a"}, ["A"]))
    assert reply.status == 200
    assert reply.body["metadata"]["labels"] == {"team": "a"}
    assert reply.body["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"}
    ]


def test_fields_another_manager_set_are_kept(client: Client) -> None:
    _apply(client, _deployment({"team": "a"}, ["A"]))
    client.request(
        "PATCH",
        f"{DEPLOYS}/web",
        {"metadata": {"labels": {"owner": "me"}}},
        ctype=MERGE,
        query={"fieldManager": "kubectl-label"},
    )
    reply = _apply(client, _deployment({}, ["A"]))
    assert reply.body["metadata"]["labels"] == {"owner": "me"}


def test_changing_a_field_another_manager_holds_is_a_conflict_unless_forced(client: Client) -> None:
    _apply(client, _deployment({"team": "a"}, ["A"], replicas=2))
    client.request(
        "PATCH",
        f"{DEPLOYS}/web",
        {"spec": {"replicas": 5}},
        ctype=MERGE,
        query={"fieldManager": "hpa"},
    )
    conflict = _apply(client, _deployment({"team": "a"}, ["A"], replicas=3))
    assert conflict.status == 409 and conflict.body["reason"] == "Conflict"
    assert (
        'conflict with "hpa"' in conflict.body["message"]
        and ".spec.replicas" in conflict.body["message"]
    )
    assert client.get(f"{DEPLOYS}/web").body["spec"]["replicas"] == 5
    forced = _apply(client, _deployment({"team": "a"}, ["A"], replicas=3), force=True)
    assert forced.status == 200 and forced.body["spec"]["replicas"] == 3
    # The forced applier now owns replicas: the other manager's claim is gone.
    hpa = [e for e in forced.body["metadata"]["managedFields"] if e["manager"] == "hpa"]
    assert all("f:replicas" not in e["fieldsV1"].get("f:spec", {}) for e in hpa)


def test_applying_the_same_value_is_no_conflict(client: Client) -> None:
    _apply(client, _deployment({"team": "a"}, ["A"], replicas=2))
    client.request(
        "PATCH",
        f"{DEPLOYS}/web",
        {"spec": {"replicas": 5}},
        ctype=MERGE,
        query={"fieldManager": "hpa"},
    )
    assert _apply(client, _deployment({"team": "a"}, ["A"], replicas=5)).status == 200


def test_apply_needs_a_field_manager(client: Client) -> None:
    reply = client.request("PATCH", f"{DEPLOYS}/web", _deployment({}, ["A"]), ctype=APPLY)
    assert reply.status == 400 and "fieldManager" in reply.body["message"]


scalars = st.one_of(st.integers(0, 3), st.text("ab", max_size=2))
objs = st.recursive(
    scalars,
    lambda inner: st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, min_size=1, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["spec", "data"]), objs, max_size=2))
def test_fields_v1_round_trips(obj: dict[str, Any]) -> None:
    paths = fieldsets.leaf_paths("ConfigMap", obj)
    assert fieldsets.from_fields_v1(fieldsets.to_fields_v1(paths)) == paths


@given(st.permutations(["f:name", "f:value", "f:x"]))
def test_removing_an_items_fields_in_any_order_removes_the_item(order: list[str]) -> None:
    obj = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "env": [{"name": "A", "value": "1", "x": "y"}, {"name": "B", "value": "2"}],
                }
            ]
        }
    }
    item = ("f:spec", "f:containers", 'k:{"name":"a"}', "f:env", 'k:{"name":"A"}')
    out = copy.deepcopy(obj)
    for token in order:
        fieldsets.remove(out, (*item, token))
    assert out["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]
