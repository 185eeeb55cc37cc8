"""Table responses: the columns kubectl prints, computed by the server."""

from __future__ import annotations

import pytest

from lab.apiserver.tables import human_duration
from lab.store import Store
from tests.unit.lab.apiserver.conftest import TABLE, Client, configmap, service


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (150, "2m30s"),
        (180, "3m"),
        (3600, "60m"),
        (4 * 3600 + 60, "4h1m"),
        (20 * 3600, "20h"),
        (3 * 86400 + 3600, "3d1h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400, "3y"),
        ((3 * 365 + 3) * 86400, "3y3d"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def _pod() -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "echo", "namespace": "default"},
        "spec": {
            "nodeName": "node1",
            "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
        },
    }


def _table(client: Client, path: str) -> dict:
    reply = client.request("GET", path, accept=TABLE)
    assert reply.status == 200 and reply.body["kind"] == "Table"
    return reply.body


def test_pod_columns(client: Client, store: Store) -> None:
    assert client.request("POST", "/api/v1/namespaces/default/pods", _pod()).status == 201
    store.update_status(
        "Pod",
        "default",
        "echo",
        {
            "phase": "Running",
            "podIP": "10.244.1.7",
            "containerStatuses": [
                {"name": "a", "ready": True, "restartCount": 2},
                {"name": "b", "ready": False, "restartCount": 1},
            ],
        },
    )
    table = _table(client, "/api/v1/namespaces/default/pods")
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns[:5] == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0)]
    assert ("IP", 1) in columns and ("Node", 1) in columns
    cells = dict(
        zip([c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"], strict=True)
    )
    assert cells["Name"] == "echo" and cells["Ready"] == "1/2" and cells["Status"] == "Running"
    assert cells["Restarts"] == 3 and cells["IP"] == "10.244.1.7" and cells["Node"] == "node1"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_daemonset_columns_are_kubectls(client: Client, store: Store) -> None:
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                         "containers": [{"name": "a", "image": "x"}]},
            },
        },
    }
    assert client.request("POST", "/apis/apps/v1/namespaces/default/daemonsets", ds).status == 201
    store.update_status("DaemonSet", "default", "agent", {
        "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
        "updatedNumberScheduled": 2, "numberAvailable": 1})
    table = _table(client, "/apis/apps/v1/namespaces/default/daemonsets")
    names = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert names == ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available",
                     "Node Selector", "Age"]
    assert table["rows"][0]["cells"][:7] == ["agent", 2, 2, 1, 2, 1, "kubernetes.io/os=linux"]


def test_service_columns_and_one_object_as_a_table(client: Client) -> None:
    client.request("POST", "/api/v1/namespaces/default/services", service("web", port=8080))
    table = _table(client, "/api/v1/namespaces/default/services/web")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:6] == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[0] == "web" and cells[1] == "ClusterIP" and cells[4] == "8080/TCP"
    assert cells[2].startswith("10.")


def test_include_object_none_leaves_rows_bare(client: Client) -> None:
    client.request("POST", "/api/v1/namespaces/default/configmaps", configmap("c", a="1", b="2"))
    reply = client.request(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        query={"includeObject": "None"},
        accept=TABLE,
    )
    assert reply.body["rows"] == [{"cells": ["c", 2, reply.body["rows"][0]["cells"][2]]}]


def _ago(seconds: int, micro: bool = False) -> str:
    from datetime import UTC, datetime, timedelta

    when = datetime.now(UTC) - timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def test_events_print_as_a_clusters_do_recorded_either_way(client: Client) -> None:
    # Ages chosen where kubectl's rounding is coarse (a second's delay changes no cell).
    old_style = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1"},
        "involvedObject": {"kind": "Pod", "name": "web-x", "fieldPath": "spec.containers{web}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container ",
        "type": "Warning",
        "source": {"component": "kubelet", "host": "node1"},
        "firstTimestamp": _ago(3 * 3600),
        "lastTimestamp": _ago(20 * 60),
        "count": 3,
    }
    new_style = {  # what the events.k8s.io recorder writes: eventTime (micro), series
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.2"},
        "involvedObject": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet",
        "message": "Scaled up",
        "type": "Normal",
        "eventTime": _ago(5 * 3600, micro=True),
        "series": {"count": 4, "lastObservedTime": _ago(40 * 60, micro=True)},
        "reportingComponent": "tulle.dev/deployment",
        "reportingInstance": "lab-1",
    }
    path = "/api/v1/namespaces/default/events"
    for event in (old_style, new_style):
        assert client.request("POST", path, event).status == 201
    wide = client.request("GET", path, accept=TABLE, query={"includeObject": "None"}).body
    names = [c["name"] for c in wide["columnDefinitions"]]
    assert names == [
        "Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message",
        "First Seen", "Count", "Name",
    ]  # fmt: skip
    rows = {r["cells"][-1]: r["cells"] for r in wide["rows"]}
    assert rows["web.1"] == [
        "20m", "Warning", "BackOff", "pod/web-x", "spec.containers{web}", "kubelet, node1",
        "Back-off restarting failed container", "3h", 3, "web.1",
    ]  # fmt: skip
    assert rows["web.2"] == [
        "40m", "Normal", "ScalingReplicaSet", "deployment/web", "",
        "tulle.dev/deployment, lab-1", "Scaled up", "5h", 4, "web.2",
    ]  # fmt: skip


def test_ingress_columns_and_admission_through_the_model(client: Client, store: Store) -> None:
    ingress = {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "site", "namespace": "default"},
        "spec": {"ingressClassName": "tulle", "tls": [{"hosts": ["a.com"], "secretName": "s"}],
                 "rules": [{"host": "a.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                           {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    }
    path = "/apis/networking.k8s.io/v1/namespaces/default/ingresses"
    assert client.request("POST", path, ingress).status == 201
    bad = {**ingress, "metadata": {"name": "bad", "namespace": "default"},
           "spec": {"rules": [{"host": "10.0.0.1"}]}}
    refused = client.request("POST", path, bad)
    assert refused.status == 422 and "must be a DNS name, not an IP address" in str(refused.body)
    store.update_status("Ingress", "default", "site",
                        {"loadBalancer": {"ingress": [{"ip": "10.96.7.7"}]}})
    table = _table(client, path)
    cells = dict(zip([c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"],
                     strict=True))
    assert (cells["Name"], cells["Class"], cells["Hosts"], cells["Address"], cells["Ports"]) == (
        "site", "tulle", "a.com,*", "10.96.7.7", "80, 443")
