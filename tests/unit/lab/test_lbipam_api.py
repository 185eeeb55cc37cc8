"""LoadBalancer IPAM through a real lab API server, as the controller's ServiceAccount: a
LoadBalancer Service gets a pool address in status, a second waits (pool of one) with an
Event, and turning the first into a ClusterIP Service gives its address to the second."""

from __future__ import annotations

import copy
from typing import Any

from lab.seed import GATEWAY_CLASS
from tests.unit.lab.apilab import ApiLab, parts

POOL = {
    "apiVersion": "networking.tulle.io/v1alpha1",
    "kind": "LoadBalancerIPPool",
    "metadata": {"name": "one"},
    "spec": {"blocks": [{"start": "10.240.0.241"}]},
}


def lb_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]},
    }


def ingress(apilab: ApiLab, name: str) -> list[dict[str, Any]]:
    svc = apilab.store.get("Service", "default", name)
    assert svc is not None
    return ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []


def test_services_get_pool_addresses_wait_and_reuse_after_release(apilab: ApiLab) -> None:
    apilab.store.create(POOL)
    apilab.store.create(lb_service("first"))
    p = parts(apilab)
    try:
        p.settle(lambda: bool(ingress(apilab, "first")))
        assert ingress(apilab, "first") == [{"ip": "10.240.0.241", "ipMode": "VIP"}]
        apilab.store.create(lb_service("second"))
        p.settle(lambda: any(e["reason"] == "AllocationFailed" for e in apilab.objects("Event")))
        [event] = [e for e in apilab.objects("Event") if e["reason"] == "AllocationFailed"]
        assert event["involvedObject"]["name"] == "second"
        assert "no free address in pool(s) one" in event["message"]
        assert ingress(apilab, "second") == []
        first = apilab.store.get("Service", "default", "first")
        assert first is not None
        changed = copy.deepcopy(first)
        changed["spec"]["type"] = "ClusterIP"
        apilab.store.update(changed)
        p.settle(lambda: bool(ingress(apilab, "second")))
        assert ingress(apilab, "second") == [{"ip": "10.240.0.241", "ipMode": "VIP"}]
        assert ingress(apilab, "first") == []
    finally:
        assert p.informers is not None
        p.informers.stop()


def test_a_tulle_gateway_waits_not_programmed_without_a_pool(apilab: ApiLab) -> None:
    apilab.store.create(GATEWAY_CLASS)
    apilab.store.create({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "default"},
        "spec": {"gatewayClassName": "tulle",
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    })
    p = parts(apilab)

    def programmed() -> dict[str, Any] | None:
        gw = apilab.store.get("Gateway", "default", "edge") or {}
        conditions = (gw.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Programmed"), None)

    try:
        # First its Service is made (the Gateway waits for it), then it waits for a pool.
        p.settle(lambda: "no LoadBalancerIPPool selects it"
                 in str((programmed() or {}).get("message")))
        condition = programmed()
        assert condition is not None
        assert (condition["status"], condition["reason"]) == ("False", "AddressNotAssigned")
        svc = apilab.store.get("Service", "default", "tulle-gateway-edge")
        assert svc is not None and svc["spec"]["type"] == "LoadBalancer"
        assert svc["metadata"]["labels"] == {"gateway.networking.k8s.io/gateway-name": "edge"}
        gw = apilab.store.get("Gateway", "default", "edge")
        assert gw is not None
        [owner] = svc["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Gateway", gw["metadata"]["uid"])
        apilab.store.create(POOL)
        p.settle(lambda: bool((apilab.store.get("Gateway", "default", "edge") or {})
                              .get("status", {}).get("addresses")))
        gw = apilab.store.get("Gateway", "default", "edge")
        assert gw is not None
        assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": "10.240.0.241"}]
        assert ingress(apilab, "tulle-gateway-edge") == [{"ip": "10.240.0.241", "ipMode": "VIP"}]
        # A listener and an infrastructure label added: the Service follows (updated in place).
        changed = copy.deepcopy(gw)
        changed["spec"]["listeners"].append({"name": "alt", "port": 8080, "protocol": "HTTP"})
        changed["spec"]["infrastructure"] = {"labels": {"team": "edge"}}
        apilab.store.update(changed)

        def service() -> dict[str, Any]:
            return apilab.store.get("Service", "default", "tulle-gateway-edge") or {}

        p.settle(lambda: len(service()["spec"]["ports"]) == 2)
        assert service()["metadata"]["labels"]["team"] == "edge"
        assert service()["metadata"]["uid"] == svc["metadata"]["uid"]  # the same Service
        assert service()["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
        # The Gateway goes: so does its Service, and the address returns to the pool.
        apilab.store.delete("Gateway", "default", "edge")
        p.settle(lambda: apilab.store.get("Service", "default", "tulle-gateway-edge") is None)
    finally:
        assert p.informers is not None
        p.informers.stop()
