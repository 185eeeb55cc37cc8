"""A list without a selector is answered from the stored JSON texts (reads.list_bytes), not
decoded and re-encoded object by object: the same body the decoding path gives, page for
page, and an object stored under another version of its kind still served as asked."""

from __future__ import annotations

from typing import Any

from lab.apiserver import reads
from lab.apiserver.resources import lookup
from lab.apiserver.routing import Target
from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client, configmap

CMS = "/api/v1/namespaces/default/configmaps"
ALL_CMS = "/api/v1/configmaps"


def decoded(store: Store, target: Target, query: dict[str, str]) -> dict[str, Any]:
    items, meta = reads.list_objects(store, target, query)
    return reads.list_body(target, items, meta)


def test_spliced_pages_are_the_decoded_pages(client: Client, store: Store) -> None:
    for i in range(7):
        name = f"cm-{i}"
        body = configmap(name, labels={"i": str(i)})
        body["data"] = {"text": "ünïcödé \\" + '"quoted"' + "\n", "n": str(i)}
        assert client.request("POST", CMS, body).status == 201
    resource = lookup("", "v1", "configmaps")
    assert resource is not None
    target = Target(resource, "v1", None)
    query: dict[str, str] = {"limit": "3"}
    pages = 0
    while True:
        spliced = client.get(ALL_CMS, **query).body
        assert spliced == decoded(store, target, query)
        assert spliced["kind"] == "ConfigMapList" and spliced["apiVersion"] == "v1"
        pages += 1
        token = spliced["metadata"].get("continue")
        if not token:
            break
        query = {"limit": "3", "continue": token}
    assert pages == 3  # 7 objects in pages of 3


def test_an_object_stored_under_another_version_is_served_as_asked(
    client: Client, store: Store
) -> None:
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "r", "namespace": "default"},
             "spec": {"parentRefs": [{"name": "gw"}]}}
    store.apply(route)
    path = "/apis/gateway.networking.k8s.io/{}/namespaces/default/httproutes"
    beta = client.get(path.format("v1beta1")).body
    assert beta["apiVersion"] == "gateway.networking.k8s.io/v1beta1"
    assert [i["apiVersion"] for i in beta["items"]] == ["gateway.networking.k8s.io/v1beta1"]
    v1 = client.get(path.format("v1")).body
    assert [i["apiVersion"] for i in v1["items"]] == ["gateway.networking.k8s.io/v1"]
    assert beta["items"][0]["spec"] == v1["items"][0]["spec"] == route["spec"]


def test_a_nested_api_version_does_not_pass_for_the_objects_own(
    client: Client, store: Store
) -> None:
    """Keys sort before apiVersion in the stored text; one holding an apiVersion of its own
    must not be taken for the object's."""
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "aaa": {"apiVersion": "gateway.networking.k8s.io/v1beta1"},
             "metadata": {"name": "r", "namespace": "default"}, "spec": {}}
    store.apply(route)
    beta = client.get("/apis/gateway.networking.k8s.io/v1beta1/namespaces/default/httproutes")
    assert beta.body["items"][0]["apiVersion"] == "gateway.networking.k8s.io/v1beta1"


def test_selected_lists_still_decode(client: Client) -> None:
    for name, app in (("a", "web"), ("b", "db")):
        client.request("POST", CMS, configmap(name, labels={"app": app}))
    found = client.get(CMS, labelSelector="app=web").body
    assert [i["metadata"]["name"] for i in found["items"]] == ["a"]
