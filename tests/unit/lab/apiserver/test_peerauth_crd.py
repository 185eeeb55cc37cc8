"""PeerAuthentication (security.tulle.io/v1) is served from its CRD (deploy/crds/tulle), as
the Gateway API kinds are: checked against the schema, then by the typed model, which says
Istio's CEL rules; the agent and the waypoint may list and watch it, not write it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab import gateway_crds
from lab.apiserver import crds, identities
from lab.apiserver.app import Api, Request
from lab.apiserver.crds import install_gateway_api
from lab.store import Store
from tests.unit.lab.apiserver.test_gateway_api_crds import (
    TABLE,
    Direct,
    _generator,
    bare,
    causes,
)

__all__ = ["bare"]  # the fixture, shared

GROUP = "/apis/security.tulle.io"
POLICIES = f"{GROUP}/v1/namespaces/default/peerauthentications"


def policy(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "security.tulle.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "web"},
        "spec": spec,
    }


WORKLOAD = {"selector": {"matchLabels": {"app": "web"}}, "mtls": {"mode": "STRICT"}}


@pytest.fixture
def api(bare: tuple[Store, Direct]) -> Direct:
    install_gateway_api(bare[0])  # as `tulle lab up` does: the Gateway API's and Tulle's
    return bare[1]


def test_the_crd_file_is_what_the_generator_writes() -> None:
    generator = _generator()
    docs = generator.outputs()[gateway_crds.TULLE_CRD_DIR]
    assert sorted(docs) == [
        "authorizationpolicies.yaml",
        "backendtrafficpolicies.yaml",
        "httpfaults.yaml",
        "httplocalratelimitpolicies.yaml",
        "loadbalancerippools.yaml",
        "peerauthentications.yaml",
    ]
    for name, doc in docs.items():
        assert (gateway_crds.TULLE_CRD_DIR / name).read_text() == generator.render(doc), (
            f"{name} is stale: run python deploy/crds/generate.py"
        )


def test_the_crd_passes_the_servers_validation_and_serves_the_modelled_kind() -> None:
    [crd] = [
        c
        for c in gateway_crds.manifests(gateway_crds.TULLE_CRD_DIR)
        if c["spec"]["names"]["kind"] == "PeerAuthentication"
    ]
    assert crds.problems(crd) == []
    res = crds.resource_of(crd)
    assert res is not None and res.modelled and res.custom and res.namespaced
    assert (res.group, res.versions, res.short_names) == ("security.tulle.io", ("v1",), ("pa",))
    assert [c[0] for c in res.printer_columns] == ["Mode", "Age"]
    spec = res.schema_dict()["properties"]["spec"]  # type: ignore[index]
    assert spec["properties"]["mtls"]["properties"]["mode"]["enum"] == [
        "UNSET",
        "DISABLE",
        "PERMISSIVE",
        "STRICT",
    ]
    rules = [v["rule"] for v in spec["properties"]["portLevelMtls"]["x-kubernetes-validations"]]
    assert rules == ["self.all(key, 0 < int(key) && int(key) <= 65535)"]
    assert "portLevelMtls" in spec["x-kubernetes-validations"][0]["rule"]


def test_the_lab_installs_it_with_the_gateway_api() -> None:
    kinds = [c["spec"]["names"]["kind"] for c in gateway_crds.manifests()]
    assert "PeerAuthentication" in kinds and "HTTPRoute" in kinds


def test_a_missing_crd_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no CustomResourceDefinition for GatewayClass, Gateway, HTTPRoute"):
        gateway_crds.manifests(tmp_path)


def test_served_only_once_installed(bare: tuple[Store, Direct]) -> None:
    store, call = bare
    assert call("GET", POLICIES)[0] == 404
    install_gateway_api(store)
    assert call("GET", POLICIES)[0] == 200
    listed = call("GET", f"{GROUP}/v1")[1]["resources"]
    assert sorted((r["name"], r.get("shortNames")) for r in listed) == [
        ("authorizationpolicies", ["ap"]),
        ("authorizationpolicies/status", None),
        ("peerauthentications", ["pa"]),
    ]


def test_a_valid_policy_is_stored_as_sent(api: Direct) -> None:
    sent = policy(**WORKLOAD, portLevelMtls={"8080": {"mode": "DISABLE"}})
    status, body = api("POST", POLICIES, sent)
    assert status == 201, body
    assert body["spec"] == sent["spec"]
    assert api("GET", f"{POLICIES}/web")[1]["spec"] == sent["spec"]
    assert api("POST", POLICIES, {**policy(), "metadata": {"name": "ns-wide"}})[0] == 201


def test_port_level_without_a_selector_is_refused_by_name(api: Direct) -> None:
    for spec in (
        {"portLevelMtls": {"8080": {"mode": "DISABLE"}}},
        {"selector": {"matchLabels": {}}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}},
    ):
        status, body = api("POST", POLICIES, policy(**spec))
        assert status == 422
        assert body["details"]["group"] == "security.tulle.io"
        assert causes(body)["spec.portLevelMtls"].startswith(
            "requires spec.selector with matchLabels"
        )
    assert api("GET", POLICIES)[1]["items"] == []


def test_port_bounds_and_the_mode_enum(api: Direct) -> None:
    status, body = api("POST", POLICIES, policy(**WORKLOAD, portLevelMtls={"0": {}}))
    assert status == 422 and causes(body) == {'spec.portLevelMtls["0"]': "port must be 1-65535"}
    status, body = api("POST", POLICIES, policy(mtls={"mode": "strict"}))
    assert status == 422 and causes(body) == {
        "spec.mtls.mode": 'Unsupported value: "strict": supported values: "UNSET", "DISABLE", '
        '"PERMISSIVE", "STRICT"'
    }
    bad_port_mode = policy(**WORKLOAD, portLevelMtls={"80": {"mode": "ON"}})
    status, body = api("POST", POLICIES, bad_port_mode)
    assert status == 422 and "Unsupported value: \"ON\"" in str(causes(body))


def test_printer_columns(api: Direct) -> None:
    api("POST", POLICIES, policy(**WORKLOAD))
    table = api("GET", POLICIES, accept=TABLE)[1]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Mode", "Age"]
    assert table["rows"][0]["cells"][:2] == ["web", "STRICT"]


def _as(store: Store, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    data = json.dumps(body).encode() if body is not None else b""
    reply = Api(store, frozenset({"admin-token"})).handle(Request(method, path, {}, headers, data))
    payload = reply.body
    if isinstance(payload, bytes) and reply.content_type == "application/json":
        payload = json.loads(payload)
    return reply.status, payload


def _allowed(store: Store, token: str, verb: str) -> bool:
    review = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "spec": {
            "resourceAttributes": {
                "verb": verb,
                "group": "security.tulle.io",
                "resource": "peerauthentications",
                "namespace": "default",
            }
        },
    }
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    status, body = _as(store, token, "POST", path, review)
    assert status == 201, body
    return bool(body["status"]["allowed"])


def test_the_agent_and_the_waypoint_read_it_and_cannot_write_it(
    bare: tuple[Store, Direct],
) -> None:
    store, admin = bare
    install_gateway_api(store)
    assert admin("POST", POLICIES, policy(**WORKLOAD))[0] == 201
    tokens = identities.seed(store, identities.load(identities.MANIFESTS))
    # The waypoint reads them for its L7 hop to enrolled backends (l7proxy/via.py).
    for account in ("tulle-agent", "tulle-waypoint"):
        token = tokens[account]
        status, body = _as(store, token, "GET", f"{GROUP}/v1/peerauthentications")
        assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["web"]
        assert _allowed(store, token, "watch") and _allowed(store, token, "list")
        assert not _allowed(store, token, "update")
        refused = _as(store, token, "POST", POLICIES, {**policy(), "metadata": {"name": "x"}})
        assert refused[0] == 403
    assert _as(store, tokens["tulle-lab-dns"], "GET", f"{GROUP}/v1/peerauthentications")[0] == 403
