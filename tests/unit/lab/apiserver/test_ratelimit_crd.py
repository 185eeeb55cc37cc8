"""HTTPLocalRateLimitPolicy (policy.tulle.io/v1alpha1) is served from its CRD
(deploy/crds/tulle): checked against the schema, then by the typed model (Linkerd's
cross-field rules); the waypoint may list and watch it, the lab controller writes its
status, neither writes its spec."""

from __future__ import annotations

from typing import Any

import pytest

from lab import gateway_crds
from lab.apiserver import crds, identities
from lab.apiserver.crds import install_gateway_api
from lab.store import Store
from tests.unit.lab.apiserver.test_gateway_api_crds import Direct, bare, causes
from tests.unit.lab.apiserver.test_peerauth_crd import _as

__all__ = ["bare"]  # the fixture, shared

GROUP = "/apis/policy.tulle.io"
POLICIES = f"{GROUP}/v1alpha1/namespaces/default/httplocalratelimitpolicies"
SPEC: dict[str, Any] = {
    "targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
    "total": {"requestsPerSecond": 100},
    "identity": {"requestsPerSecond": 10},
    "overrides": [{"requestsPerSecond": 50,
                   "clientRefs": [{"kind": "ServiceAccount", "name": "vip"}]}],
}


def policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "policy.tulle.io/v1alpha1",
        "kind": "HTTPLocalRateLimitPolicy",
        "metadata": {"name": "echo"},
        "spec": spec,
    }


@pytest.fixture
def api(bare: tuple[Store, Direct]) -> Direct:
    install_gateway_api(bare[0])
    return bare[1]


def test_the_crd_passes_the_servers_validation() -> None:
    [crd] = [c for c in gateway_crds.manifests(gateway_crds.TULLE_CRD_DIR)
             if c["spec"]["names"]["kind"] == "HTTPLocalRateLimitPolicy"]
    assert crds.problems(crd) == []
    res = crds.resource_of(crd)
    assert res is not None and res.modelled and res.custom and res.namespaced
    assert (res.group, res.versions, res.short_names) == (
        "policy.tulle.io", ("v1alpha1",), ("rlp",)
    )


def test_a_valid_policy_is_stored_as_sent(api: Direct) -> None:
    status, body = api("POST", POLICIES, policy(SPEC))
    assert status == 201, body
    assert api("GET", f"{POLICIES}/echo")[1]["spec"] == SPEC


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({**SPEC, "targetRefs": []}, "spec.targetRefs", ""),
        ({**SPEC, "targetRefs": [{"kind": "Server", "name": "web"}]},
         "spec.targetRefs[0].kind", "Unsupported value"),
        ({**SPEC, "total": {"requestsPerSecond": 0}}, "spec.total.requestsPerSecond", ""),
        ({**SPEC, "identity": {}}, "spec.identity.requestsPerSecond", ""),
        ({**SPEC, "overrides": [{"requestsPerSecond": 5,
                                 "clientRefs": [{"kind": "Pod", "name": "x"}]}]},
         "spec.overrides[0].clientRefs[0].kind", "Unsupported value"),
        ({**SPEC, "identity": {"requestsPerSecond": 101}}, "spec.identity",
         "over total.requestsPerSecond 100"),
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
    listed = f"{GROUP}/v1alpha1/httplocalratelimitpolicies"
    status, body = _as(store, tokens["tulle-waypoint"], "GET", listed)
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["echo"]
    refused = _as(store, tokens["tulle-waypoint"], "POST", POLICIES,
                  {**policy(SPEC), "metadata": {"name": "x"}})
    assert refused[0] == 403
    assert _as(store, tokens["tulle-lab-controller"], "GET", listed)[0] == 200
    assert _as(store, tokens["tulle-agent"], "GET", listed)[0] == 200  # it steers the targets


def test_linkerds_server_target_is_refused_by_name(api: Direct) -> None:
    """A policy ported from Linkerd as is names a Server in ``targetRef``: refused, saying
    why and what to write instead (never pruned into a policy without its target)."""
    spec = {"targetRef": {"group": "policy.linkerd.io", "kind": "Server", "name": "web"},
            "total": {"requestsPerSecond": 10}}
    status, body = api("POST", POLICIES, policy(spec))
    assert status == 422, body
    found = causes(body)
    assert "spec.targetRef" in found and "targetRefs" in found["spec.targetRef"], found
    # Without either, the model still requires targetRefs.
    status, body = api("POST", POLICIES, policy({"total": {"requestsPerSecond": 10}}))
    assert status == 422 and "spec.targetRefs" in causes(body), body
