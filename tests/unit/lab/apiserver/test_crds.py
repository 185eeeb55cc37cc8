"""CustomResourceDefinitions make their kinds served; deleting one removes its resources."""

from __future__ import annotations

from typing import Any

from lab.store import Store
from tests.unit.lab.apiserver.conftest import TABLE, Client

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
MPS = "/apis/tulle.dev/v1alpha1/namespaces/default/meshpolicies"


def _crd(
    group: str = "tulle.dev", plural: str = "meshpolicies", kind: str = "MeshPolicy"
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "shortNames": ["mp"]},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"}
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def _mp(name: str = "strict", mode: str = "STRICT") -> dict[str, Any]:
    return {
        "apiVersion": "tulle.dev/v1alpha1",
        "kind": "MeshPolicy",
        "metadata": {"name": name},
        "spec": {"mode": mode},
    }


def test_a_crd_serves_its_kind(client: Client) -> None:
    assert client.get(MPS).status == 404
    created = client.request("POST", CRDS, _crd())
    assert created.status == 201
    conditions = {c["type"]: c["status"] for c in created.body["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    groups = client.get("/apis").body["groups"]
    assert "tulle.dev" in [g["name"] for g in groups]
    listed = client.get("/apis/tulle.dev/v1alpha1").body["resources"]
    assert {r["name"] for r in listed} == {"meshpolicies", "meshpolicies/status"}
    assert client.request("POST", MPS, _mp()).status == 201
    assert client.get(f"{MPS}/strict").body["spec"] == {"mode": "STRICT"}
    table = client.request("GET", MPS, accept=TABLE).body
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Mode", "Age"]
    assert table["rows"][0]["cells"][:2] == ["strict", "STRICT"]


def test_custom_resources_take_merge_patches_but_not_strategic_ones(client: Client) -> None:
    client.request("POST", CRDS, _crd())
    client.request("POST", MPS, _mp())
    merged = client.request(
        "PATCH",
        f"{MPS}/strict",
        {"spec": {"mode": "PERMISSIVE"}},
        ctype="application/merge-patch+json",
    )
    assert merged.status == 200 and merged.body["spec"]["mode"] == "PERMISSIVE"
    smp = client.request(
        "PATCH",
        f"{MPS}/strict",
        {"spec": {"mode": "X"}},
        ctype="application/strategic-merge-patch+json",
    )
    assert smp.status == 415


def test_deleting_the_crd_deletes_its_resources(client: Client, store: Store) -> None:
    client.request("POST", CRDS, _crd())
    client.request("POST", MPS, _mp("a"))
    client.request("POST", MPS, _mp("b"))
    assert client.request("DELETE", f"{CRDS}/meshpolicies.tulle.dev").status == 200
    assert store.list("MeshPolicy")[0] == []
    assert client.get(MPS).status == 404


def test_a_crd_cannot_take_a_built_in_or_modelled_kind(client: Client) -> None:
    # The store keys objects by kind: a ConfigMap or HTTPRoute of another group is not served,
    # and the real ones stay as they were.
    for kind, plural in (("ConfigMap", "configmaps"), ("HTTPRoute", "httproutes")):
        assert client.request("POST", CRDS, _crd("example.com", plural, kind)).status == 201
        assert client.get(f"/apis/example.com/v1alpha1/namespaces/default/{plural}").status == 404
    assert client.get("/api/v1/namespaces/default/configmaps").status == 200
    routes = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"
    assert client.get(routes).status == 200


def test_a_malformed_crd_is_refused_naming_its_fields_and_breaks_nothing(client: Client) -> None:
    broken = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "x.example.com"},
        "spec": {"group": "example.com"},
    }
    reply = client.request("POST", CRDS, broken)
    assert reply.status == 422
    fields = {c["field"] for c in reply.body["details"]["causes"]}
    assert {"spec.names.plural", "spec.names.kind", "spec.versions"} <= fields
    assert client.get("/apis/example.com/v1").status == 404
    assert client.get("/api/v1/namespaces/default/configmaps").status == 200


def test_a_crd_schema_must_be_structural(client: Client) -> None:
    crd = _crd()
    crd["spec"]["versions"][0]["schema"] = {
        "openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {}}}}
    }
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Mode", "type": "text", "jsonPath": "spec.mode"}
    ]
    reply = client.request("POST", CRDS, crd)
    assert reply.status == 422
    causes = {c["field"]: c["message"] for c in reply.body["details"]["causes"]}
    at = "spec.versions[0]"
    assert causes[f"{at}.schema.openAPIV3Schema.properties[spec].type"].startswith("Required value")
    assert causes[f"{at}.additionalPrinterColumns[0].type"].startswith('Unsupported value: "text"')
    assert f"{at}.additionalPrinterColumns[0].jsonPath" in causes


SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["mode"],
            "properties": {
                "mode": {"type": "string", "enum": ["STRICT", "PERMISSIVE"]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "hosts": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {"type": "string", "pattern": "^[a-z.]+$"},
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def _crd_with_schema() -> dict[str, Any]:
    crd = _crd()
    crd["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": SCHEMA}
    return crd


def _mp_spec(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tulle.dev/v1alpha1",
        "kind": "MeshPolicy",
        "metadata": {"name": "p"},
        "spec": spec,
    }


def test_custom_resources_are_validated_against_the_crd_schema(client: Client) -> None:
    client.request("POST", CRDS, _crd_with_schema())
    cases = [
        (_mp_spec(mode="LOOSE"), "spec.mode", "Unsupported value"),
        (_mp_spec(mode="STRICT", port=70000), "spec.port", "<= 65535"),
        (_mp_spec(mode="STRICT", port="80"), "spec.port", "must be of type integer"),
        (_mp_spec(mode="STRICT", hosts=["a", "b", "c"]), "spec.hosts", "at most 2"),
        (_mp_spec(mode="STRICT", hosts=["Bad_Host"]), "spec.hosts[0]", "should match"),
        (_mp_spec(port=80), "spec.mode", "Required value"),
    ]
    for body, field, words in cases:
        reply = client.request("POST", MPS, body)
        assert reply.status == 422, body
        causes = reply.body["details"]["causes"]
        assert any(c["field"] == field and words in c["message"] for c in causes), (body, causes)
    ok = client.request(
        "POST",
        MPS,
        _mp_spec(mode="STRICT", port=80, hosts=["a.example"], extra={"any": {"thing": 1}}),
    )
    assert ok.status == 201 and ok.body["spec"]["extra"] == {"any": {"thing": 1}}


def test_unknown_custom_resource_fields_are_refused_under_strict_and_pruned_otherwise(
    client: Client,
) -> None:
    client.request("POST", CRDS, _crd_with_schema())
    strict = client.request(
        "POST", MPS, _mp_spec(mode="STRICT", mdoe="x"), query={"fieldValidation": "Strict"}
    )
    assert strict.status == 400 and 'unknown field "spec.mdoe"' in strict.body["message"]
    pruned = client.request(
        "POST", MPS, _mp_spec(mode="STRICT", mdoe="x"), query={"fieldValidation": "Ignore"}
    )
    assert pruned.status == 201 and pruned.body["spec"] == {"mode": "STRICT"}


def test_explain_sees_the_crd_schema(client: Client) -> None:
    client.request("POST", CRDS, _crd_with_schema())
    doc = client.get("/openapi/v3/apis/tulle.dev/v1alpha1").body
    schema = doc["components"]["schemas"]["dev.tulle.v1alpha1.MeshPolicy"]
    assert schema["properties"]["spec"]["properties"]["mode"]["enum"] == ["STRICT", "PERMISSIVE"]
