"""Objects every lab starts with: its Namespaces and one Node per lab node."""

from __future__ import annotations

from typing import Any

from agent.lab.topology import LabPlan, NodePlan
from l7proxy.routing import CONTROLLER_NAME

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
