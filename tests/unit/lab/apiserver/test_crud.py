"""create, get, update, delete and the status subresource, over HTTPS, answered as Kubernetes does."""

from __future__ import annotations

from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client, configmap, service

CMS = "/api/v1/namespaces/default/configmaps"
SVCS = "/api/v1/namespaces/default/services"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"


def test_create_get_list_delete(client: Client) -> None:
    created = client.request("POST", CMS, configmap("a", x="1"))
    assert created.status == 201
    meta = created.body["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"]
    got = client.get(f"{CMS}/a")
    assert got.status == 200 and got.body["data"] == {"x": "1"}
    listed = client.get(CMS)
    assert listed.body["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in listed.body["items"]] == ["a"]
    assert client.request("DELETE", f"{CMS}/a").status == 200
    gone = client.get(f"{CMS}/a")
    assert gone.status == 404
    assert gone.body["kind"] == "Status" and gone.body["reason"] == "NotFound"
    assert gone.body["message"] == 'configmaps "a" not found'


def test_unauthenticated_requests_get_401_but_version_is_public(client: Client) -> None:
    assert client.request("GET", CMS, token="wrong").status == 401
    assert client.request("GET", "/version", token="").status == 200


def test_create_twice_is_already_exists(client: Client) -> None:
    assert client.request("POST", CMS, configmap("a")).status == 201
    again = client.request("POST", CMS, configmap("a"))
    assert again.status == 409 and again.body["reason"] == "AlreadyExists"


def test_create_in_a_missing_namespace_is_not_found(client: Client) -> None:
    reply = client.request("POST", "/api/v1/namespaces/nope/configmaps", configmap("a", ns="nope"))
    assert reply.status == 404 and reply.body["message"] == 'namespaces "nope" not found'


def test_namespace_in_body_must_match_url(client: Client) -> None:
    reply = client.request("POST", CMS, configmap("a", ns="kube-system"))
    assert reply.status == 400 and "does not match" in reply.body["message"]


def test_invalid_object_is_422_naming_the_field(client: Client) -> None:
    bad = service("web")
    bad["spec"]["ports"] = [{"port": 70000}]
    reply = client.request("POST", SVCS, bad)
    assert reply.status == 422 and reply.body["reason"] == "Invalid"
    assert reply.body["details"]["causes"][0]["field"].startswith("spec.ports[0].port")


def test_update_with_a_stale_resource_version_is_409_conflict(client: Client) -> None:
    first = client.request("POST", CMS, configmap("a", x="1")).body
    newer = client.request("PUT", f"{CMS}/a", {**first, "data": {"x": "2"}})
    assert newer.status == 200 and newer.body["data"] == {"x": "2"}
    stale = client.request("PUT", f"{CMS}/a", {**first, "data": {"x": "3"}})
    assert stale.status == 409 and stale.body["reason"] == "Conflict"
    assert "the object has been modified" in stale.body["message"]
    assert client.get(f"{CMS}/a").body["data"] == {"x": "2"}


def test_delete_with_a_stale_precondition_is_409(client: Client) -> None:
    first = client.request("POST", CMS, configmap("a")).body
    client.request("PUT", f"{CMS}/a", {**first, "data": {"y": "1"}})
    options = {"preconditions": {"resourceVersion": first["metadata"]["resourceVersion"]}}
    assert client.request("DELETE", f"{CMS}/a", options).status == 409
    assert client.get(f"{CMS}/a").status == 200


def _route(status: dict | None = None) -> dict:
    obj = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["a.example"]},
    }
    if status is not None:
        obj["status"] = status
    return obj


FORGED = {
    "parents": [{"parentRef": {"name": "gw"}, "controllerName": "evil.example/x", "conditions": []}]
}
REAL = {
    "parents": [
        {"parentRef": {"name": "gw"}, "controllerName": "tulle.dev/gateway", "conditions": []}
    ]
}


def test_create_and_update_ignore_status(client: Client, store: Store) -> None:
    created = client.request("POST", ROUTES, _route(FORGED)).body
    assert "status" not in created or created["status"] != FORGED
    store.update_status("HTTPRoute", "default", "r", REAL)
    current = client.get(f"{ROUTES}/r").body
    current["status"] = FORGED
    current["spec"]["hostnames"] = ["b.example"]
    updated = client.request("PUT", f"{ROUTES}/r", current).body
    assert updated["spec"]["hostnames"] == ["b.example"]
    assert updated["status"]["parents"][0]["controllerName"] == "tulle.dev/gateway"


def test_status_subresource_ignores_spec(client: Client) -> None:
    created = client.request("POST", ROUTES, _route()).body
    sent = {
        **created,
        "spec": {**created["spec"], "hostnames": ["changed.example"]},
        "status": REAL,
    }
    reply = client.request("PUT", f"{ROUTES}/r/status", sent)
    assert reply.status == 200
    stored = client.get(f"{ROUTES}/r").body
    assert stored["status"]["parents"][0]["controllerName"] == "tulle.dev/gateway"
    assert stored["spec"]["hostnames"] == ["a.example"]
    assert stored["metadata"]["generation"] == created["metadata"]["generation"]


def test_status_patch_changes_only_status(client: Client) -> None:
    client.request("POST", ROUTES, _route())
    patch = {"spec": {"hostnames": ["x.example"]}, "status": REAL}
    reply = client.request(
        "PATCH", f"{ROUTES}/r/status", patch, ctype="application/merge-patch+json"
    )
    assert reply.status == 200
    stored = client.get(f"{ROUTES}/r").body
    assert stored["spec"]["hostnames"] == ["a.example"] and stored["status"]["parents"]


def test_dry_run_writes_nothing(client: Client, store: Store) -> None:
    before = store.revision()
    reply = client.request("POST", CMS, configmap("a"), query={"dryRun": "All"})
    assert reply.status == 201 and reply.body["metadata"]["name"] == "a"
    assert store.revision() == before and client.get(f"{CMS}/a").status == 404


def test_deleting_a_namespace_deletes_what_is_in_it(client: Client) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    assert client.request("POST", "/api/v1/namespaces", ns).status == 201
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "shop"},
        "spec": {"podSelector": {}},
    }
    pols = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies"
    assert client.request("POST", pols, policy).status == 201
    assert client.request("DELETE", "/api/v1/namespaces/shop").status == 200
    # A namespace of the same name starts empty: the old policy does not come back.
    assert client.request("POST", "/api/v1/namespaces", ns).status == 201
    assert client.get(pols).body["items"] == []


def test_served_in_the_requested_version(client: Client) -> None:
    client.request("POST", ROUTES, _route())
    beta = client.get("/apis/gateway.networking.k8s.io/v1beta1/namespaces/default/httproutes/r")
    assert beta.body["apiVersion"] == "gateway.networking.k8s.io/v1beta1"


def test_unknown_resource_is_404(client: Client) -> None:
    assert client.get("/api/v1/namespaces/default/widgets").status == 404
    assert client.get("/apis/example.com/v1").status == 404


def test_fields_the_model_does_not_carry_are_kept_and_defaults_are_added(client: Client) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "echo", "resources": {"limits": {"cpu": "1"}}}
                    ]
                },
            },
        },
    }
    reply = client.request("POST", "/apis/apps/v1/namespaces/default/deployments", deployment)
    assert reply.status == 201
    pod_spec = reply.body["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}  # kept
    assert pod_spec["restartPolicy"] == "Always"  # the model's default
