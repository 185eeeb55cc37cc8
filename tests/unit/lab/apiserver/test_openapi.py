"""OpenAPI v3 documents of the built-in kinds (from k8s.io/api's types) and the merge keys
the server's strategic merge patch takes from the same table."""

from __future__ import annotations

from typing import Any

import pytest

from lab.apiserver.smp_meta import merge_key, merge_key_table
from tests.unit.lab.apiserver.conftest import Client

APPS = "/openapi/v3/apis/apps/v1"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_builtin_kinds_are_described_at_every_depth(client: Client) -> None:
    schemas = client.get(APPS).body["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "version": "v1", "kind": "Deployment"}
    ]
    replicas = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]
    assert replicas["type"] == "integer" and "Number of desired pods" in replicas["description"]
    pod_spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    containers = pod_spec["containers"]
    assert containers["type"] == "array"
    assert containers["items"] == {
        "allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]
    }
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert "x-kubernetes-patch-merge-key" not in pod_spec["tolerations"]  # atomic
    probe = schemas["io.k8s.api.core.v1.Probe"]["properties"]
    assert "httpGet" in probe and "handler" not in probe  # the embedded handler is inlined
    port = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert port["format"] == "int-or-string"


@pytest.mark.parametrize("path", ["/openapi/v3/api/v1", APPS, "/openapi/v3/apis/batch/v1"])
def test_every_reference_resolves(client: Client, path: str) -> None:
    doc = client.get(path).body
    names = {f"#/components/schemas/{n}" for n in doc["components"]["schemas"]}
    assert _refs(doc) - names == set()


def test_merge_keys_are_the_types_tags() -> None:
    # Every built-in kind, not only those listed by hand before (a Job's containers merge).
    assert merge_key("Job", ("spec", "template", "spec", "containers")) == "name"
    assert merge_key("StatefulSet", ("spec", "template", "spec", "volumes")) == "name"
    assert merge_key("Service", ("spec", "ports")) == "port"
    assert merge_key("Node", ("spec", "podCIDRs")) == ""  # a set of scalars
    assert merge_key("Pod", ("spec", "tolerations")) is None  # atomic
    assert merge_key("HTTPRoute", ("spec", "rules")) is None  # not built in
    assert merge_key("HTTPRoute", ("metadata", "finalizers")) == ""
    assert merge_key_table("ServiceAccount") == {
        "metadata.finalizers": "",
        "metadata.ownerReferences": "uid",
        "secrets": "name",
    }


def _job(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": containers, "restartPolicy": "Never"}}},
    }


def test_strategic_merge_patch_merges_a_jobs_containers_by_name(client: Client) -> None:
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    assert client.request("POST", jobs, _job([{"name": "a", "image": "x"}])).status == 201
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "y"}]}}}}
    reply = client.request(
        "PATCH", f"{jobs}/j", patch, ctype="application/strategic-merge-patch+json"
    )
    assert reply.status == 200, reply.body
    names = [c["name"] for c in reply.body["spec"]["template"]["spec"]["containers"]]
    assert names == ["a", "b"]
