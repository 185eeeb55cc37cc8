"""Server-side apply as `tulle apply` and `kubectl apply --server-side` repeat it: a repeated
apply writes nothing (its managedFields keep their times), and a keyed list item a manager
stops applying goes whole, with the fields the server defaulted in it."""

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
