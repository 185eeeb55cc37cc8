"""Discovery and OpenAPI as a cluster serves them to kubectl's caches: aggregated discovery
(one request for every group-version), ETags with 304 Not Modified, immutable OpenAPI
documents under the index's ``?hash=``, and all of it changing when a CRD does."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from lab.apiserver.discovery import aggregated_version, etag_matches
from tests.unit.lab.apiserver.conftest import Client

V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
KUBECTL_ACCEPT = f"{V2},application/json"  # what kubectl 1.30+ sends on /api and /apis

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "meshpolicies.tulle.dev"},
    "spec": {
        "group": "tulle.dev",
        "scope": "Namespaced",
        "names": {"kind": "MeshPolicy", "plural": "meshpolicies", "singular": "meshpolicy"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    },
}


def fetch(
    client: Client, path: str, accept: str = "application/json", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """status, headers (lower-case names) and raw body of one GET."""
    conn = http.client.HTTPSConnection("127.0.0.1", client.port, context=client.ctx, timeout=10)
    try:
        conn.request(
            "GET",
            path,
            headers={"Authorization": f"Bearer {client.token}", "Accept": accept, **headers},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def split(aggregated: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """An APIGroupDiscoveryList as client-go splits it: per group-version, the resources an
    unaggregated APIResourceList would list (subresources as "plural/sub")."""
    out: dict[str, list[dict[str, Any]]] = {}
    for group in aggregated["items"]:
        name = group["metadata"].get("name", "")
        for version in group["versions"]:
            gv = f"{name}/{version['version']}" if name else version["version"]
            listed = out.setdefault(gv, [])
            for r in version["resources"]:
                kind = r["responseKind"]
                listed.append(
                    {
                        "name": r["resource"],
                        "kind": kind["kind"],
                        "namespaced": r["scope"] == "Namespaced",
                        "verbs": r["verbs"],
                        "shortNames": r.get("shortNames", []),
                        "categories": r.get("categories", []),
                    }
                )
                for sub in r.get("subresources", []):
                    listed.append(
                        {
                            "name": f"{r['resource']}/{sub['subresource']}",
                            "kind": sub["responseKind"]["kind"],
                            "namespaced": r["scope"] == "Namespaced",
                            "verbs": sub["verbs"],
                            "shortNames": [],
                            "categories": [],
                        }
                    )
    return out


def unaggregated(client: Client) -> dict[str, list[dict[str, Any]]]:
    """Every group-version's APIResourceList, fetched one by one (the old way)."""
    gvs = ["v1"] + [
        v["groupVersion"] for g in client.get("/apis").body["groups"] for v in g["versions"]
    ]
    out = {}
    for gv in gvs:
        doc = client.get(f"/api/{gv}" if gv == "v1" else f"/apis/{gv}").body
        out[gv] = [
            {
                "name": r["name"],
                "kind": r["kind"],
                "namespaced": r["namespaced"],
                "verbs": r["verbs"],
                "shortNames": r.get("shortNames", []),
                "categories": r.get("categories", []),
            }
            for r in doc["resources"]
        ]
    return out


def aggregated_both(client: Client, accept: str = KUBECTL_ACCEPT) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in ("/api", "/apis"):
        status, headers, body = fetch(client, path, accept)
        assert status == 200
        assert headers["content-type"] == (V2 if "v=v2;" in accept else V2BETA1)
        found |= split(json.loads(body))
    return found


def test_aggregated_discovery_is_every_resource_list_in_one(client: Client) -> None:
    assert aggregated_both(client) == unaggregated(client)


def test_aggregated_discovery_v2beta1_for_older_kubectl(client: Client) -> None:
    status, headers, body = fetch(client, "/api", f"{V2BETA1},application/json")
    assert status == 200 and headers["content-type"] == V2BETA1
    doc = json.loads(body)
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    (core,) = doc["items"]
    assert "name" not in core["metadata"]  # the core group is nameless
    assert aggregated_both(client, f"{V2BETA1},application/json") == unaggregated(client)


def test_plain_json_still_gets_the_unaggregated_documents(client: Client) -> None:
    status, headers, body = fetch(client, "/apis", "application/json, */*")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["kind"] == "APIGroupList"
    assert json.loads(fetch(client, "/api")[2])["kind"] == "APIVersions"


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (KUBECTL_ACCEPT, "v2"),
        (f"{V2BETA1},application/json", "v2beta1"),
        (f"application/json,{V2}", None),  # plain JSON preferred
        ("application/json;g=apidiscovery.k8s.io;v=v9;as=APIGroupDiscoveryList", None),
        ("application/yaml", None),
        ("", None),
    ],
)
def test_aggregated_version_follows_the_accept_order(accept: str, version: str | None) -> None:
    assert aggregated_version(accept) == version


def test_discovery_etag_answers_304_until_a_crd_changes_it(client: Client) -> None:
    status, headers, _ = fetch(client, "/apis", KUBECTL_ACCEPT)
    etag = headers["etag"]
    assert status == 200 and "accept" in headers["vary"].lower()
    status, headers, body = fetch(client, "/apis", KUBECTL_ACCEPT, **{"If-None-Match": etag})
    assert (status, body) == (304, b"") and headers["etag"] == etag
    # The plain document is another representation: its own ETag.
    assert fetch(client, "/apis", "application/json")[1]["etag"] != etag

    assert (
        client.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD
        ).status
        == 201
    )
    status, headers, body = fetch(client, "/apis", KUBECTL_ACCEPT, **{"If-None-Match": etag})
    assert status == 200 and headers["etag"] != etag
    served = split(json.loads(body))["tulle.dev/v1alpha1"]
    assert [r["name"] for r in served] == ["meshpolicies", "meshpolicies/status"]


def test_openapi_documents_are_immutable_under_their_hash(client: Client) -> None:
    status, headers, body = fetch(client, "/openapi/v3")
    assert status == 200 and headers["cache-control"] == "no-cache, private"
    index_etag = headers["etag"]
    assert fetch(client, "/openapi/v3", **{"If-None-Match": index_etag})[0] == 304
    url = json.loads(body)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    digest = url.split("hash=")[1]

    status, headers, body = fetch(client, url)
    assert status == 200 and json.loads(body)["openapi"] == "3.0.0"
    assert headers["cache-control"] == "public, immutable" and headers["expires"]
    assert headers["etag"] == f'"{digest}"'
    assert fetch(client, url, **{"If-None-Match": f'"{digest}"'})[0] == 304

    # Without the hash: current, not cacheable without revalidation.
    plain = fetch(client, "/openapi/v3/apis/apps/v1")
    assert plain[0] == 200 and plain[1]["cache-control"] == "no-cache, private"
    # A stale hash (the document changed since the client read the index) is redirected.
    status, headers, _ = fetch(client, "/openapi/v3/apis/apps/v1?hash=0123")
    assert status == 301 and headers["location"] == url


def test_a_new_crd_changes_the_openapi_index(client: Client) -> None:
    before = fetch(client, "/openapi/v3")
    assert (
        client.request(
            "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD
        ).status
        == 201
    )
    status, headers, body = fetch(client, "/openapi/v3", **{"If-None-Match": before[1]["etag"]})
    assert status == 200 and headers["etag"] != before[1]["etag"]
    url = json.loads(body)["paths"]["apis/tulle.dev/v1alpha1"]["serverRelativeURL"]
    doc = json.loads(fetch(client, url)[2])
    assert "/apis/tulle.dev/v1alpha1/namespaces/{namespace}/meshpolicies" in doc["paths"]


def test_patch_operations_name_the_patch_types_the_server_takes(client: Client) -> None:
    apps = client.get("/openapi/v3/apis/apps/v1").body["paths"]
    patch = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    gateway = client.get("/openapi/v3/apis/gateway.networking.k8s.io/v1").body["paths"]
    patch = gateway["/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}"]
    content = patch["patch"]["requestBody"]["content"]
    assert "application/merge-patch+json" in content  # a CRD kind on a cluster: no SMP
    assert "application/strategic-merge-patch+json" not in content


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"AB"', True),
        ('W/"AB"', True),
        ('"X", "AB"', True),
        ("*", True),
        ('"X"', False),
        ("", False),
    ],
)
def test_if_none_match(header: str, matches: bool) -> None:
    assert etag_matches(header, '"AB"') is matches


def test_a_304_keeps_the_connection_usable(client: Client) -> None:
    """No body follows a 304: the next request on the same kept-alive connection is read
    from where it starts (a stray body would be taken for the next response)."""
    conn = http.client.HTTPSConnection("127.0.0.1", client.port, context=client.ctx, timeout=10)
    auth = {"Authorization": f"Bearer {client.token}", "Accept": KUBECTL_ACCEPT}
    try:
        conn.request("GET", "/apis", headers=auth)
        first = conn.getresponse()
        etag = first.getheader("ETag")
        assert first.status == 200 and json.loads(first.read())["items"]
        conn.request("GET", "/apis", headers={**auth, "If-None-Match": etag})
        second = conn.getresponse()
        assert second.status == 304 and second.read() == b""
        assert second.getheader("Content-Type") is None
        conn.request("GET", "/api", headers=auth)
        third = conn.getresponse()
        assert third.status == 200 and json.loads(third.read())["kind"] == "APIGroupDiscoveryList"
    finally:
        conn.close()
