"""BackendTrafficPolicy (policy.tulle.io/v1alpha1) is served from its CRD (deploy/crds/tulle):
checked against the schema, then by the typed model; the waypoint may list and watch it, the
lab controller writes its status, neither writes its spec."""

from __future__ import annotations

from typing import Any

import pytest

from lab import gateway_crds
from lab.apiserver import crds, identities
from lab.apiserver.crds import install_gateway_api
from lab.store import Store
from tests.unit.lab.apiserver.test_gateway_api_crds import TABLE, Direct, bare, causes
from tests.unit.lab.apiserver.test_peerauth_crd import _as

__all__ = ["bare"]  # the fixture, shared

GROUP = "/apis/policy.tulle.io"
POLICIES = f"{GROUP}/v1alpha1/namespaces/default/backendtrafficpolicies"
SPEC: dict[str, Any] = {
    "targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
    "connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}},
    "outlierDetection": {"consecutive5xxErrors": 2, "baseEjectionTime": "5s"},
}


def policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy.tulle.io/v1alpha1",
        "kind": "BackendTrafficPolicy",
        "metadata": {"name": "echo"},
        "spec": spec,
    }


@pytest.fixture
def api(bare: tuple[Store, Direct]) -> Direct:
    install_gateway_api(bare[0])
    return bare[1]


def test_the_crd_passes_the_servers_validation() -> None:
    [crd] = [c for c in gateway_crds.manifests(gateway_crds.TULLE_CRD_DIR)
             if c["spec"]["names"]["kind"] == "BackendTrafficPolicy"]
    assert crds.problems(crd) == []
    res = crds.resource_of(crd)
    assert res is not None and res.modelled and res.custom and res.namespaced
    assert (res.group, res.versions, res.short_names) == (
        "policy.tulle.io", ("v1alpha1",), ("btp",)
    )


def test_a_valid_policy_is_stored_as_sent(api: Direct) -> None:
    status, body = api("POST", POLICIES, policy(SPEC))
    assert status == 201, body
    assert api("GET", f"{POLICIES}/echo")[1]["spec"] == SPEC


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({**SPEC, "targetRefs": []}, "spec.targetRefs", ""),
        ({**SPEC, "targetRefs": [{"kind": "Gateway", "name": "gw"}]}, "spec.targetRefs[0].kind",
         "Unsupported value"),
        ({**SPEC, "outlierDetection": {"maxEjectionPercent": 101}},
         "spec.outlierDetection.maxEjectionPercent", ""),
        ({**SPEC, "outlierDetection": {"interval": "0ms"}},
         "spec.outlierDetection.interval", "at least 1ms"),
        ({**SPEC, "connectionPool": {"tcp": {"maxConnections": -1}}},
         "spec.connectionPool.tcp.maxConnections", ""),
    ],
)
def test_bad_policies_are_refused_by_field(
    api: Direct, spec: dict[str, Any], field: str, message: str
) -> None:
    status, body = api("POST", POLICIES, policy(spec))
    assert status == 422, body
    found = causes(body)
    assert field in found, found
    assert message in found[field]
    assert api("GET", POLICIES)[1]["items"] == []


def test_the_waypoint_reads_it_and_the_lab_controller_writes_its_status(
    bare: tuple[Store, Direct],
) -> None:
    store, admin = bare
    install_gateway_api(store)
    assert admin("POST", POLICIES, policy(SPEC))[0] == 201
    tokens = identities.seed(store, identities.load(identities.MANIFESTS))
    listed = f"{GROUP}/v1alpha1/backendtrafficpolicies"
    status, body = _as(store, tokens["tulle-waypoint"], "GET", listed)
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["echo"]
    refused = _as(store, tokens["tulle-waypoint"], "POST", POLICIES,
                  {**policy(SPEC), "metadata": {"name": "x"}})
    assert refused[0] == 403
    assert _as(store, tokens["tulle-lab-controller"], "GET", listed)[0] == 200
    # The agent reads it too: the Services it targets are steered to the waypoint.
    assert _as(store, tokens["tulle-agent"], "GET", listed)[0] == 200


@pytest.mark.parametrize(("where", "field", "value"), [
    ("connectionPool.tcp", "connectTimeout", "1s"),
    ("connectionPool.tcp", "tcpKeepalive", {"time": "10s"}),
    ("connectionPool.http", "idleTimeout", "1m"),
    ("connectionPool.http", "h2UpgradePolicy", "UPGRADE"),
    ("outlierDetection", "consecutiveErrors", 3),
    ("loadBalancer", "consistentHash", {"httpHeaderName": "x-user"}),
    ("", "tls", {"mode": "ISTIO_MUTUAL"}),
    ("", "portLevelSettings", [{"port": {"number": 80}}]),
])
def test_an_unsupported_istio_field_is_refused_by_name_not_pruned(
    api: Direct, where: str, field: str, value: Any
) -> None:
    spec: dict[str, Any] = {"targetRefs": SPEC["targetRefs"]}
    node = spec
    for key in where.split(".") if where else ():
        node = node.setdefault(key, {})
    node[field] = value
    status, body = api("POST", POLICIES, policy(spec))
    assert status == 422, body
    path = ".".join(p for p in ("spec", where, field) if p)
    found = causes(body)
    assert path in found and "not supported" in found[path], found
    assert api("GET", POLICIES)[1]["items"] == []


def test_local_origin_fields_and_a_simple_balancer_are_stored(api: Direct) -> None:
    spec = {**SPEC, "outlierDetection": {"splitExternalLocalOriginErrors": True,
                                         "consecutiveLocalOriginFailures": 2},
            "loadBalancer": {"simple": "ROUND_ROBIN"}}
    assert api("POST", POLICIES, policy(spec))[0] == 201
    assert api("GET", f"{POLICIES}/echo")[1]["spec"] == spec


def test_the_accepted_column_reads_the_ancestors_conditions(bare: tuple[Store, Direct]) -> None:
    store, api = bare
    install_gateway_api(store)
    api("POST", POLICIES, policy(SPEC))
    accepted = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                "lastTransitionTime": "2026-12-06T07:00:00Z"}
    ancestor = {"ancestorRef": {"group": "", "kind": "Service", "name": "echo"},
                "controllerName": "tulle.io/gateway-controller", "conditions": [accepted]}
    store.update_status("BackendTrafficPolicy", "default", "echo", {"ancestors": [ancestor]})
    table = api("GET", POLICIES, accept=TABLE)[1]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Accepted", "Age"]
    assert table["rows"][0]["cells"][:2] == ["echo", "True"]
