"""Objects every lab starts with: its Namespaces, the GatewayClass and one Node per lab node,
written through the API (`lab up` as the admin; each Node by the kubelet that runs it)."""

from __future__ import annotations

from typing import Any

from lightkube import ApiError

from gatewayapi import CONTROLLER_NAME
from lab.kubeapi import ApiWriter
from lab.topology import LabPlan, NodePlan

SYSTEM_NAMESPACES = ("default", "kube-system", "tulle-system")


def node_object(node: NodePlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"},
        },
        "spec": {"podCIDR": str(node.pod_cidr), "podCIDRs": [str(node.pod_cidr)]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": str(node.fabric_ip)},
                {"type": "Hostname", "address": node.name},
            ],
        },
    }


GATEWAY_CLASS = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "GatewayClass",
    "metadata": {"name": "tulle"},
    "spec": {"controllerName": CONTROLLER_NAME},
}


def seed_objects(plan: LabPlan) -> list[dict[str, Any]]:
    namespaces: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        for ns in SYSTEM_NAMESPACES
    ]
    return [*namespaces, GATEWAY_CLASS, *(node_object(n) for n in plan.nodes)]


def cluster_objects(plan: LabPlan) -> list[dict[str, Any]]:
    """What `lab up` creates through the API: Namespaces and the GatewayClass. Nodes are not
    among them: the kubelet registers its own (``register_node``)."""
    return [o for o in seed_objects(plan) if o["kind"] != "Node"]


def seed(api: ApiWriter, objs: list[dict[str, Any]]) -> list[str]:
    """Create each object unless it exists; returns what was created (``Kind/name``)."""
    created = []
    for obj in objs:
        try:
            api.create(obj)
        except ApiError as err:
            if err.status.code != 409:  # AlreadyExists: seeded by an earlier start
                raise
            continue
        created.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return created


def register_node(api: ApiWriter, node: NodePlan) -> None:
    """As a kubelet registers its Node: create it if absent, then report its addresses
    through the status subresource (a merge: the agent's Ready condition stays)."""
    obj = node_object(node)
    seed(api, [{k: v for k, v in obj.items() if k != "status"}])
    api.update_status("Node", "", node.name, obj["status"])
