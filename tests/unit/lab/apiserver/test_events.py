"""Events served both as core/v1 and as events.k8s.io/v1: one storage, Kubernetes' field
mapping between the two shapes."""

from __future__ import annotations

from typing import Any

from lab.apiserver.events_view import to_core, to_view
from tests.unit.lab.apiserver.conftest import Client

CORE = "/api/v1/namespaces/default/events"
VIEW = "/apis/events.k8s.io/v1/namespaces/default/events"


def _new_style(name: str = "e1") -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "regarding": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "ScalingReplicaSet",
        "note": "Scaled up",
        "type": "Normal",
        "action": "Scaling",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "tulle.dev/deployment",
        "reportingInstance": "lab-1",
    }


def test_the_mapping_is_kubernetes_and_round_trips() -> None:
    core = to_core(_new_style())
    assert core["involvedObject"]["name"] == "web" and core["message"] == "Scaled up"
    assert core["reportingComponent"] == "tulle.dev/deployment" and core["apiVersion"] == "v1"
    assert "regarding" not in core and "note" not in core
    old = {"source": {"component": "kubelet"}, "firstTimestamp": "t", "count": 2}
    assert to_view(old) == {
        "apiVersion": "events.k8s.io/v1",
        "deprecatedSource": {"component": "kubelet"},
        "deprecatedFirstTimestamp": "t",
        "deprecatedCount": 2,
    }
    assert to_core(to_view(core)) == core


def test_an_event_recorded_either_way_reads_both_ways(client: Client) -> None:
    made = client.request("POST", VIEW, _new_style(), query={"fieldValidation": "Strict"})
    assert made.status == 201, made.body
    assert made.body["apiVersion"] == "events.k8s.io/v1" and made.body["note"] == "Scaled up"
    core = client.get(f"{CORE}/e1").body
    assert core["apiVersion"] == "v1" and core["message"] == "Scaled up"
    assert core["involvedObject"]["kind"] == "Deployment" and "note" not in core
    old = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "e2"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "message": "old style",
        "source": {"component": "kubelet"},
        "count": 3,
    }
    assert client.request("POST", CORE, old).status == 201
    listed = {e["metadata"]["name"]: e for e in client.get(VIEW).body["items"]}
    assert listed["e2"]["note"] == "old style" and listed["e2"]["deprecatedCount"] == 3
    assert listed["e2"]["deprecatedSource"] == {"component": "kubelet"}


def test_writes_through_the_view_patch_and_validate_in_its_shape(client: Client) -> None:
    assert client.request("POST", VIEW, _new_style()).status == 201
    merge = client.request(
        "PATCH", f"{VIEW}/e1", {"note": "Scaled down"}, ctype="application/merge-patch+json"
    )
    assert merge.status == 200 and merge.body["note"] == "Scaled down"
    assert client.get(f"{CORE}/e1").body["message"] == "Scaled down"
    json_patch = client.request(
        "PATCH",
        f"{VIEW}/e1",
        [{"op": "replace", "path": "/reason", "value": "Rescaled"}],
        ctype="application/json-patch+json",
    )
    assert json_patch.status == 200 and client.get(f"{CORE}/e1").body["reason"] == "Rescaled"
    # A core field name is not a field of events.k8s.io/v1.
    strict = client.request(
        "POST", VIEW, {**_new_style("e3"), "message": "x"}, query={"fieldValidation": "Strict"}
    )
    assert strict.status == 400 and 'unknown field "message"' in strict.body["message"]
    assert client.request("DELETE", f"{VIEW}/e1").status == 200
    assert client.get(f"{CORE}/e1").status == 404


def test_discovery_lists_both_groups(client: Client) -> None:
    names = [r["name"] for r in client.get("/apis/events.k8s.io/v1").body["resources"]]
    assert names == ["events"]
    schemas = client.get("/openapi/v3/apis/events.k8s.io/v1").body["components"]["schemas"]
    assert "note" in schemas["io.k8s.api.events.v1.Event"]["properties"]


def test_a_table_watch_of_the_view_prints_its_columns(client: Client) -> None:
    from tests.unit.lab.apiserver.conftest import TABLE

    assert client.request("POST", VIEW, _new_style()).status == 201
    events = client.watch(VIEW, accept=TABLE, timeoutSeconds="1")
    first = next(e for e in events if e["type"] == "ADDED")
    cells = first["object"]["rows"][0]["cells"]
    assert cells[1:4] == ["Normal", "ScalingReplicaSet", "deployment/web"]
    assert cells[5:7] == ["tulle.dev/deployment, lab-1", "Scaled up"]
