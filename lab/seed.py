"""Objects every lab starts with: the Gateway API CustomResourceDefinitions, its Namespaces,
the GatewayClass, the IngressClass (the lab's default), the default LoadBalancerIPPool and one
Node per lab node, written through the API (`lab up` as the admin; each Node by the kubelet
that runs it)."""

from __future__ import annotations

import time
from typing import Any

from lightkube import ApiError

from gatewayapi import CONTROLLER_NAME
from gatewayapi.types import INGRESS_CONTROLLER_NAME
from identity.system import SYSTEM_NAMESPACE
from lab.kubeapi import ApiWriter
from lab.topology import LB_POOL_CIDR, LabPlan, NodePlan

SYSTEM_NAMESPACES = ("default", "kube-system", SYSTEM_NAMESPACE)  # Kubernetes', Tulle's


def node_labels(name: str) -> dict[str, str]:
    """The labels a lab node registers with (a DaemonSet's nodeSelector matches them)."""
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}


def node_object(node: NodePlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": node_labels(node.name),
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

INGRESS_CLASS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "IngressClass",
    "metadata": {
        "name": "tulle",
        # the lab has no other Ingress controller: Ingresses that name no class are Tulle's
        "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
    },
    "spec": {"controller": INGRESS_CONTROLLER_NAME},
}


# The lab's LoadBalancer addresses: the fabric's top /27, above every node address, so the
# external client and every node reach them over the fabric, announced by one node (ARP).
DEFAULT_POOL = {
    "apiVersion": "networking.tulle.io/v1alpha1",
    "kind": "LoadBalancerIPPool",
    "metadata": {"name": "lab-fabric"},
    "spec": {"blocks": [{"cidr": str(LB_POOL_CIDR)}]},
}


def seed_objects(plan: LabPlan) -> list[dict[str, Any]]:
    namespaces: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        for ns in SYSTEM_NAMESPACES
    ]
    return [*namespaces, GATEWAY_CLASS, INGRESS_CLASS, DEFAULT_POOL,
            *(node_object(n) for n in plan.nodes)]


def cluster_objects(plan: LabPlan) -> list[dict[str, Any]]:
    """What `lab up` creates through the API: Namespaces, the GatewayClass, the
    IngressClass and the default LoadBalancerIPPool. Nodes are not
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


CRD_ESTABLISH_SECONDS = 10.0


def install_crds(
    api: ApiWriter, crds: list[dict[str, Any]], timeout: float = CRD_ESTABLISH_SECONDS
) -> list[str]:
    """Create each CRD, or replace one whose spec differs (an older lab's), then wait until
    every one is Established, as `kubectl wait --for condition=established` would: only then
    are their kinds served. Returns the names created or replaced."""
    changed = []
    for crd in crds:
        name = crd["metadata"]["name"]
        live = api.get("CustomResourceDefinition", "", name)
        if live is None:
            api.create(crd)
        elif live.get("spec") != crd["spec"]:
            meta = {**crd["metadata"], "resourceVersion": live["metadata"]["resourceVersion"]}
            api.update({**crd, "metadata": meta})
        else:
            continue
        changed.append(name)
    deadline = time.monotonic() + timeout
    waiting = [c["metadata"]["name"] for c in crds]
    while waiting:
        waiting = [
            n for n in waiting if not _established(api.get("CustomResourceDefinition", "", n))
        ]
        if waiting and time.monotonic() > deadline:
            raise TimeoutError(f"CustomResourceDefinitions not established: {', '.join(waiting)}")
        if waiting:
            time.sleep(0.05)
    return changed


def _established(crd: dict[str, Any] | None) -> bool:
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def register_node(api: ApiWriter, node: NodePlan) -> None:
    """As a kubelet registers its Node: create it if absent, then report its addresses
    through the status subresource (a merge: the agent's Ready condition stays)."""
    obj = node_object(node)
    seed(api, [{k: v for k, v in obj.items() if k != "status"}])
    api.update_status("Node", "", node.name, obj["status"])
