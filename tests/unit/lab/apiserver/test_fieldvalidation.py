"""fieldValidation: Strict rejects unknown fields naming them, Warn warns, Ignore drops them."""

from __future__ import annotations

import http.client
import json

import pytest

from tests.unit.lab.apiserver.conftest import Client

CMS = "/api/v1/namespaces/default/configmaps"
TYPO = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "lables": {"a": "b"}},
    "dta": {"a": "b"},
}


def test_strict_rejects_naming_every_unknown_field(client: Client) -> None:
    reply = client.request("POST", CMS, TYPO, query={"fieldValidation": "Strict"})
    assert reply.status == 400 and reply.body["reason"] == "BadRequest"
    assert 'unknown field "dta"' in reply.body["message"]
    assert 'unknown field "metadata.lables"' in reply.body["message"]
    assert client.get(f"{CMS}/c").status == 404


def _raw_post(client: Client, query: str) -> http.client.HTTPResponse:
    conn = client._conn()
    conn.request(
        "POST",
        f"{CMS}?{query}",
        body=json.dumps(TYPO),
        headers={"Authorization": f"Bearer {client.token}", "Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_warn_stores_without_the_unknown_fields_and_warns(client: Client) -> None:
    resp = _raw_post(client, "fieldValidation=Warn")
    assert resp.status == 201
    assert resp.headers.get_all("Warning") == [  # in the document's order, as Go's decoder
        '299 - "unknown field \\"metadata.lables\\""',
        '299 - "unknown field \\"dta\\""',
    ]
    stored = client.get(f"{CMS}/c").body
    assert "dta" not in stored and "lables" not in stored["metadata"]


def test_ignore_drops_silently(client: Client) -> None:
    resp = _raw_post(client, "fieldValidation=Ignore")
    assert resp.status == 201 and resp.headers.get_all("Warning") is None
    assert "dta" not in client.get(f"{CMS}/c").body


def test_known_fields_pass_strict(client: Client) -> None:
    ok = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"a": "b"}},
        "data": {"a": "b"},
    }
    assert client.request("POST", CMS, ok, query={"fieldValidation": "Strict"}).status == 201


def test_strict_checks_merge_patches_too(client: Client) -> None:
    client.request("POST", CMS, {"kind": "ConfigMap", "metadata": {"name": "c"}})
    reply = client.request(
        "PATCH",
        f"{CMS}/c",
        {"dta": {}},
        query={"fieldValidation": "Strict"},
        ctype="application/merge-patch+json",
    )
    assert reply.status == 400 and 'unknown field "dta"' in reply.body["message"]


def test_bad_mode_is_400(client: Client) -> None:
    assert client.request("POST", CMS, TYPO, query={"fieldValidation": "Loose"}).status == 400


DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def _deployment(**container: object) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "echo", **container}]},
            },
        },
    }


def test_built_in_kinds_are_checked_at_every_depth(client: Client) -> None:
    typo = _deployment(imagee="x")
    reply = client.request("POST", DEPLOYS, typo, query={"fieldValidation": "Strict"})
    assert reply.status == 400
    assert reply.body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee"'
    )
    warned = client.request("POST", DEPLOYS, typo, query={"fieldValidation": "Warn"})
    assert warned.status == 201
    stored = client.get(f"{DEPLOYS}/web").body
    assert stored["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "echo"}]


def test_fields_kubernetes_has_pass_strict(client: Client) -> None:
    full = _deployment(
        ports=[{"containerPort": 8080, "protocol": "TCP"}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
        resources={"limits": {"cpu": "500m", "memory": 64}},
        env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    )
    full["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}  # type: ignore[index]
    reply = client.request("POST", DEPLOYS, full, query={"fieldValidation": "Strict"})
    assert reply.status == 201, reply.body


@pytest.mark.parametrize("mode", ["Strict", "Ignore"])
def test_a_value_of_the_wrong_type_is_refused_in_every_mode(client: Client, mode: str) -> None:
    # A ReplicaSet: no typed admission behind it, so this check is all that stands guard.
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs"},
        "spec": {"replicas": "three", "selector": {"matchLabels": {"a": "b"}}},
    }
    path = "/apis/apps/v1/namespaces/default/replicasets"
    reply = client.request("POST", path, rs, query={"fieldValidation": mode})
    assert reply.status == 400 and reply.body["reason"] == "BadRequest"
    assert reply.body["message"] == (
        'ReplicaSet in version "v1" cannot be handled as a ReplicaSet: json: cannot unmarshal '
        "string into Go struct field ReplicaSetSpec.spec.replicas of type int32"
    )
    env = _deployment(env=[{"name": "A", "value": 1}])
    reply = client.request("POST", DEPLOYS, env, query={"fieldValidation": mode})
    assert reply.status == 400 and reply.body["message"].endswith(
        "Go struct field EnvVar.spec.template.spec.containers.env.value of type string"
    )


def test_strategic_merge_patch_directives_are_not_fields(client: Client) -> None:
    assert client.request("POST", DEPLOYS, _deployment()).status == 201
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [{"name": "web", "image": "v2", "env": None}],
                }
            }
        }
    }
    reply = client.request(
        "PATCH",
        f"{DEPLOYS}/web",
        patch,
        query={"fieldValidation": "Strict"},
        ctype="application/strategic-merge-patch+json",
    )
    assert reply.status == 200, reply.body
