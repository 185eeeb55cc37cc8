"""The lab controller writes each BackendTLSPolicy's Accepted and ResolvedRefs through the
API, as its own ServiceAccount (which may read ConfigMaps): a CA ConfigMap that exists is
resolved, a missing one is InvalidCACertificateRef with NoValidCACertificate; written once."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Service
from lab.controllers.gateways import KINDS, GatewayController
from lab.controllers.manager import FIELD_MANAGER
from lab.kubeapi import ApiWriter, connect
from tests.unit.gatewayapi.test_backendtls import CA
from tests.unit.lab.apilab import ApiLab


def policy(name: str, config_map: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "BackendTLSPolicy",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
            "validation": {
                "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": config_map}],
                "hostname": "echo.default.example",
            },
        },
    }


SERVICE = from_dict({
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"ports": [{"name": "https", "port": 8443}]},
})


def conditions(lab: ApiLab, name: str) -> dict[str, tuple[str, str]]:
    stored = lab.store.get("BackendTLSPolicy", "default", name)
    assert stored is not None
    [ancestor] = stored["status"]["ancestors"]
    assert ancestor["controllerName"] == "tulle.io/gateway-controller"
    return {c["type"]: (c["status"], c["reason"]) for c in ancestor["conditions"]}


def test_backend_tls_status_is_written_through_the_api_once(apilab: ApiLab) -> None:
    assert isinstance(SERVICE, Service)
    apilab.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "echo-ca", "namespace": "default"},
                         "data": {"ca.crt": CA}})
    apilab.store.create(policy("good", "echo-ca"))
    apilab.store.create(policy("lost", "nothing"))
    with connect(apilab.controller, FIELD_MANAGER) as client:
        gateways = GatewayController(ApiWriter(client))
        gateways.reconcile(apilab.store.list(KINDS)[0], [SERVICE])
        assert conditions(apilab, "good") == {
            "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
        # "lost" is newer on the same Service: Conflicted; its ref is unresolved either way.
        assert conditions(apilab, "lost") == {
            "Accepted": ("False", "Conflicted"),
            "ResolvedRefs": ("False", "InvalidCACertificateRef"),
        }
        before = apilab.store.revision()
        gateways.reconcile(apilab.store.list(KINDS)[0], [SERVICE])
        assert apilab.store.revision() == before  # nothing changed: nothing written


def test_a_gateway_whose_route_uses_the_service_is_an_ancestor(apilab: ApiLab) -> None:
    """The Gateway API's ancestor for a north-south BackendTLSPolicy is the Gateway (upstream
    conformance looks the conditions up there), beside the Service."""
    assert isinstance(SERVICE, Service)
    apilab.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "echo-ca", "namespace": "default"},
                         "data": {"ca.crt": CA}})
    apilab.store.create(policy("good", "echo-ca"))
    apilab.store.create({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                         "metadata": {"name": "r", "namespace": "default"},
                         "spec": {"parentRefs": [{"name": "edge", "namespace": "infra"}],
                                  "rules": [{"backendRefs": [{"name": "echo", "port": 8443}]}]}})
    with connect(apilab.controller, FIELD_MANAGER) as client:
        GatewayController(ApiWriter(client)).reconcile(apilab.store.list(KINDS)[0], [SERVICE])
    stored = apilab.store.get("BackendTLSPolicy", "default", "good")
    assert stored is not None
    [service, gateway] = stored["status"]["ancestors"]
    assert service["ancestorRef"]["kind"] == "Service"
    assert gateway["ancestorRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                      "name": "edge", "namespace": "infra"}
    assert {c["type"]: (c["status"], c["reason"]) for c in gateway["conditions"]} == {
        "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
