"""Server-side apply as `tulle apply` and `kubectl apply --server-side` repeat it: a repeated
apply writes nothing (its managedFields keep their times), and a keyed list item or a struct
a manager stops applying goes whole, with the fields the server defaulted in it, unless
another manager holds part of it."""

from __future__ import annotations

import time

from .conftest import Client, service

APPLY = "application/apply-patch+yaml"
PATH = "/api/v1/namespaces/default/services/web"


def _apply(client: Client, port: int):
    return client.request(
        "PATCH", PATH, service("web", port=port), ctype=APPLY, query={"fieldManager": "me"}
    )


def test_a_repeated_apply_a_second_later_writes_nothing(client: Client) -> None:
    first = _apply(client, 80)
    assert first.status in (200, 201), first.body
    time.sleep(1.1)  # managedFields times have a one-second resolution
    again = _apply(client, 80)
    assert again.status == 200, again.body
    assert again.body["metadata"]["resourceVersion"] == first.body["metadata"]["resourceVersion"]
    assert again.body["metadata"]["managedFields"] == first.body["metadata"]["managedFields"]


def test_a_port_no_longer_applied_goes_with_its_defaulted_protocol(client: Client) -> None:
    [port] = _apply(client, 80).body["spec"]["ports"]
    assert port["protocol"] == "TCP"  # defaulted by the server: nobody applied it
    moved = _apply(client, 81)
    assert moved.status == 200, moved.body
    assert [p["port"] for p in moved.body["spec"]["ports"]] == [81]


def test_labels_applied_into_a_map_applied_empty_before_are_kept(client: Client) -> None:
    path = "/api/v1/namespaces/team"

    def apply(labels: dict[str, str]):
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "team", "labels": labels}}
        return client.request("PATCH", path, body, ctype=APPLY, query={"fieldManager": "me"})

    assert apply({}).status in (200, 201)
    labelled = apply({"team": "ok"})
    assert labelled.status == 200, labelled.body
    assert labelled.body["metadata"]["labels"] == {"team": "ok"}
    assert apply({}).body["metadata"].get("labels", {}) == {}  # and they go again


GATEWAY_PATH = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/gw"


def _gateway(**spec: object) -> dict[str, object]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {"gatewayClassName": "tulle",
                     "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}], **spec}}


def _apply_gateway(client: Client, body: dict[str, object], manager: str = "me"):
    return client.request(
        "PATCH", GATEWAY_PATH, body, ctype=APPLY, query={"fieldManager": manager}
    )


def test_a_struct_no_longer_applied_goes_with_the_defaults_inside_it(client: Client) -> None:
    ref = {"backend": {"clientCertificateRef": {"name": "client-cert"}}}
    applied = _apply_gateway(client, _gateway(tls=ref))
    assert applied.body["spec"]["tls"]["backend"]["clientCertificateRef"]["kind"] == "Secret"
    dropped = _apply_gateway(client, _gateway())
    assert dropped.status == 200, dropped.body
    assert "tls" not in dropped.body["spec"]
    assert dropped.body["spec"]["listeners"][0]["allowedRoutes"]  # other defaults stay


def test_a_struct_another_manager_holds_part_of_stays_with_that_part(client: Client) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments/web"

    def deployment(**spec: object) -> dict[str, object]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "web", "image": "e"}]}},
                         **spec}}

    def apply(body: dict[str, object]):
        return client.request("PATCH", path, body, ctype=APPLY, query={"fieldManager": "me"})

    assert apply(deployment(strategy={"rollingUpdate": {"maxSurge": 2}})).status in (200, 201)
    other = client.request(
        "PATCH", path, {"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 1}}}},
        ctype="application/merge-patch+json", query={"fieldManager": "someone-else"},
    )
    assert other.status == 200, other.body
    dropped = apply(deployment())
    assert dropped.status == 200, dropped.body
    assert dropped.body["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1}
