"""The lab controller writes each HTTPLocalRateLimitPolicy's GEP-713 status (as for
BackendTrafficPolicy, each kind attached on its own) through the API, as
its own ServiceAccount: Accepted for the older of two policies on one Service, Conflicted
for the newer, TargetNotFound for a Service that does not exist; written once."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Service
from lab.controllers.gateways import KINDS, GatewayController
from lab.controllers.manager import FIELD_MANAGER
from lab.kubeapi import ApiWriter, connect
from tests.unit.lab.apilab import ApiLab


def policy(name: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy.tulle.io/v1alpha1",
        "kind": "HTTPLocalRateLimitPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"targetRefs": [{"kind": "Service", "name": target}],
                 "identity": {"requestsPerSecond": 5}},
    }


SERVICE = from_dict({
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"ports": [{"port": 8080}]},
})


def accepted(lab: ApiLab, name: str) -> dict[str, Any]:
    stored = lab.store.get("HTTPLocalRateLimitPolicy", "default", name)
    assert stored is not None
    [ancestor] = stored["status"]["ancestors"]
    assert ancestor["controllerName"] == "tulle.io/gateway-controller"
    [condition] = ancestor["conditions"]
    return dict(condition)


def test_policy_status_is_written_through_the_api_once(apilab: ApiLab) -> None:
    assert isinstance(SERVICE, Service)
    apilab.store.create(policy("first", "echo"))
    apilab.store.create(policy("second", "echo"))
    apilab.store.create(policy("lost", "nothing"))
    with connect(apilab.controller, FIELD_MANAGER) as client:
        gateways = GatewayController(ApiWriter(client))
        gateways.reconcile(apilab.store.list(KINDS)[0], [SERVICE])
        first, second, lost = (accepted(apilab, n) for n in ("first", "second", "lost"))
        assert (first["status"], first["reason"]) == ("True", "Accepted")
        assert (second["status"], second["reason"]) == ("False", "Conflicted")
        assert "HTTPLocalRateLimitPolicy default/first" in second["message"]
        assert (lost["status"], lost["reason"]) == ("False", "TargetNotFound")
        before = apilab.store.revision()
        gateways.reconcile(apilab.store.list(KINDS)[0], [SERVICE])
        assert apilab.store.revision() == before  # nothing changed: nothing written


def test_a_service_takes_one_policy_of_each_kind(apilab: ApiLab) -> None:
    """A BackendTrafficPolicy on the Service does not conflict with its rate limit."""
    assert isinstance(SERVICE, Service)
    pool = {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {"name": "older", "namespace": "default"},
            "spec": {"targetRefs": [{"kind": "Service", "name": "echo"}],
                     "outlierDetection": {"consecutive5xxErrors": 1}}}
    apilab.store.create(pool)
    apilab.store.create(policy("limit", "echo"))
    with connect(apilab.controller, FIELD_MANAGER) as client:
        GatewayController(ApiWriter(client)).reconcile(apilab.store.list(KINDS)[0], [SERVICE])
    condition = accepted(apilab, "limit")
    assert (condition["status"], condition["reason"]) == ("True", "Accepted")
    stored = apilab.store.get("BackendTrafficPolicy", "default", "older")
    assert stored is not None
    assert stored["status"]["ancestors"][0]["conditions"][0]["reason"] == "Accepted"
