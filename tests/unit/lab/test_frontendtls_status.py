"""The lab controller reads ConfigMaps for Gateways' client-certificate validation (GEP-91):
a missing CA ConfigMap makes the HTTPS listener InvalidCACertificateRef /
NoValidCACertificate; once the ConfigMap exists the listener is programmed; an
AllowInsecureFallback default sets the Gateway's InsecureFrontendValidationMode."""

from __future__ import annotations

import base64
from typing import Any

from lab.controllers.gateways import KINDS, GatewayController
from lab.controllers.manager import FIELD_MANAGER
from lab.kubeapi import ApiWriter, connect
from tests.unit.gatewayapi.test_backendtls import CA
from tests.unit.l7proxy.frontend_pki import Authority
from tests.unit.lab.apilab import ApiLab

GW = "gateway.networking.k8s.io/v1"


def gateway(mode: str) -> dict[str, Any]:
    refs = [{"group": "", "kind": "ConfigMap", "name": "client-ca"}]
    return {"apiVersion": GW, "kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
            "spec": {"gatewayClassName": "tulle",
                     "tls": {"frontend": {"default": {"validation": {
                         "caCertificateRefs": refs, "mode": mode}}}},
                     "listeners": [{"name": "https", "port": 443, "protocol": "HTTPS",
                                    "tls": {"certificateRefs": [{"name": "server"}]}}]}}


def status(lab: ApiLab) -> tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]:
    stored = lab.store.get("Gateway", "default", "gw")
    assert stored is not None
    gateway_conditions = {c["type"]: (c["status"], c["reason"])
                          for c in stored["status"]["conditions"]}
    [listener] = stored["status"]["listeners"]
    return gateway_conditions, {c["type"]: (c["status"], c["reason"])
                                for c in listener["conditions"]}


def test_gateway_status_follows_the_ca_config_map(apilab: ApiLab) -> None:
    server = Authority("server CA").issue("web.example")
    apilab.store.create({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tulle"},
                         "spec": {"controllerName": "tulle.io/gateway-controller"}})
    apilab.store.create({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                         "metadata": {"name": "server", "namespace": "default"},
                         "data": {"tls.crt": base64.b64encode(server.crt).decode(),
                                  "tls.key": base64.b64encode(server.key).decode()}})
    apilab.store.create(gateway("AllowInsecureFallback"))
    with connect(apilab.controller, FIELD_MANAGER) as client:
        gateways = GatewayController(ApiWriter(client))
        gateways.reconcile(apilab.store.list(KINDS)[0], [])
        on_gateway, on_listener = status(apilab)
        assert on_listener["ResolvedRefs"] == ("False", "InvalidCACertificateRef")
        assert on_listener["Accepted"] == ("False", "NoValidCACertificate")
        assert on_gateway["InsecureFrontendValidationMode"] == ("True", "ConfigurationChanged")
        apilab.store.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "client-ca", "namespace": "default"},
                             "data": {"ca.crt": CA}})
        gateways.reconcile(apilab.store.list(KINDS)[0], [])
        _, on_listener = status(apilab)
        assert on_listener["Accepted"][0] == on_listener["ResolvedRefs"][0] == "True"
