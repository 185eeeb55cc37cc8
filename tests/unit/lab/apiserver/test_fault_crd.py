"""HTTPFault (policy.tulle.io/v1alpha1) is served from its CRD (deploy/crds/tulle): checked
against the schema, then by the typed model (Istio's rules the schema cannot say); the
waypoint and the lab controller may list and watch it and write nothing."""

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
FAULTS = f"{GROUP}/v1alpha1/namespaces/default/httpfaults"
SPEC: dict[str, Any] = {
    "delay": {"fixedDelay": "100ms", "percentage": {"value": 12.5}},
    "abort": {"httpStatus": 503, "percentage": {"value": 50}},
}


def fault(spec: dict[str, Any], name: str = "flaky") -> dict[str, Any]:
    return {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPFault",
            "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def api(bare: tuple[Store, Direct]) -> Direct:
    install_gateway_api(bare[0])
    return bare[1]


def test_the_crd_passes_the_servers_validation() -> None:
    [crd] = [c for c in gateway_crds.manifests(gateway_crds.TULLE_CRD_DIR)
             if c["spec"]["names"]["kind"] == "HTTPFault"]
    assert crds.problems(crd) == []
    res = crds.resource_of(crd)
    assert res is not None and res.modelled and res.custom and res.namespaced
    assert (res.group, res.versions) == ("policy.tulle.io", ("v1alpha1",))


def test_a_valid_fault_is_stored_as_sent(api: Direct) -> None:
    status, body = api("POST", FAULTS, fault(SPEC))
    assert status == 201, body
    assert api("GET", f"{FAULTS}/flaky")[1]["spec"] == SPEC


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"delay": {"percentage": {"value": 5}}}, "spec.delay.fixedDelay", ""),
        ({"abort": {"httpStatus": 700}}, "spec.abort.httpStatus", ""),
        ({"abort": {"httpStatus": 503, "percentage": {"value": 101}}},
         "spec.abort.percentage.value", ""),
        ({"abort": {"grpcStatus": "BROKEN"}}, "spec.abort.grpcStatus", "Unsupported value"),
        # Istio's rules, from the typed model after the schema
        ({}, "spec", "a delay, an abort or both"),
        ({"abort": {"httpStatus": 503, "grpcStatus": "UNAVAILABLE"}}, "spec.abort",
         "exactly one of httpStatus and grpcStatus"),
    ],
)
def test_bad_faults_are_refused_by_field(
    api: Direct, spec: dict[str, Any], field: str, message: str
) -> None:
    status, body = api("POST", FAULTS, fault(spec))
    assert status == 422, body
    found = causes(body)
    assert field in found, found
    assert message in found[field]
    assert api("GET", FAULTS)[1]["items"] == []


def test_the_waypoint_and_the_controller_read_it_and_write_nothing(
    bare: tuple[Store, Direct],
) -> None:
    store, admin = bare
    install_gateway_api(store)
    assert admin("POST", FAULTS, fault(SPEC))[0] == 201
    tokens = identities.seed(store, identities.load(identities.MANIFESTS))
    listed = f"{GROUP}/v1alpha1/httpfaults"
    for reader in ("tulle-waypoint", "tulle-lab-controller"):
        status, body = _as(store, tokens[reader], "GET", listed)
        assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["flaky"]
        assert _as(store, tokens[reader], "POST", FAULTS, fault(SPEC, name="x"))[0] == 403
    assert _as(store, tokens["tulle-agent"], "GET", listed)[0] == 403
