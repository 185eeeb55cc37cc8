"""The lab controller writes a Gateway's ResolvedRefs for its client certificate toward
backends (GEP-3155): a missing Secret is InvalidClientCertificateRef; once the Secret exists, ResolvedRefs; a
Secret whose key is another certificate's is InvalidClientCertificateRef again."""

from __future__ import annotations

import base64
from typing import Any

from lab.controllers.gateways import KINDS, GatewayController
from lab.controllers.manager import FIELD_MANAGER
from lab.kubeapi import ApiWriter, connect
from tests.unit.l7proxy.frontend_pki import Authority, Leaf
from tests.unit.lab.apilab import ApiLab

GW = "gateway.networking.k8s.io/v1"


def secret(leaf: Leaf, key: bytes) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "client", "namespace": "default"},
            "data": {"tls.crt": base64.b64encode(leaf.crt).decode(),
                     "tls.key": base64.b64encode(key).decode()}}


def resolved_refs(lab: ApiLab) -> tuple[str, str]:
    stored = lab.store.get("Gateway", "default", "gw")
    assert stored is not None
    [found] = [(c["status"], c["reason"]) for c in stored["status"]["conditions"]
               if c["type"] == "ResolvedRefs"]
    return found


def test_gateway_resolved_refs_follows_the_client_certificate_secret(apilab: ApiLab) -> None:
    leaf = Authority("client CA").issue("gateway", client=True)
    apilab.store.create({"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tulle"},
                         "spec": {"controllerName": "tulle.io/gateway-controller"}})
    apilab.store.create({"apiVersion": GW, "kind": "Gateway",
                         "metadata": {"name": "gw", "namespace": "default"},
                         "spec": {"gatewayClassName": "tulle",
                                  "tls": {"backend": {"clientCertificateRef": {"name": "client"}}},
                                  "listeners": [{"name": "http", "port": 80,
                                                 "protocol": "HTTP"}]}})
    with connect(apilab.controller, FIELD_MANAGER) as client:
        gateways = GatewayController(ApiWriter(client))
        gateways.reconcile(apilab.store.list(KINDS)[0], [])
        assert resolved_refs(apilab) == ("False", "InvalidClientCertificateRef")
        apilab.store.create(secret(leaf, leaf.key))
        gateways.reconcile(apilab.store.list(KINDS)[0], [])
        assert resolved_refs(apilab) == ("True", "ResolvedRefs")
        other = Authority("client CA 2").issue("other", client=True)
        apilab.store.apply(secret(leaf, other.key))
        gateways.reconcile(apilab.store.list(KINDS)[0], [])
        assert resolved_refs(apilab) == ("False", "InvalidClientCertificateRef")
