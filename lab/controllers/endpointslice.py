"""EndpointSlice controller (pure): Services + Pods -> the EndpointSlices that should exist.

As kube-controller-manager does: selected Pods with an IP become endpoints, named
targetPorts resolve per Pod, and Pods that resolve ports differently land in separate slices.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from agent.model.core import Pod, Service, ServicePort
from lab.controllers.deployment import is_ready

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.tulle.io"


def resolve_target_port(port: ServicePort, pod: Pod) -> int | None:
    target = port.target_port if port.target_port is not None else port.port
    if isinstance(target, int):
        return target
    for container in pod.spec.containers:
        for cport in container.ports:
            if cport.name == target and cport.protocol == port.protocol:
                return cport.container_port
    return None


def selects(service: Service, pod: Pod) -> bool:
    selector = service.spec.selector
    return (
        bool(selector)
        and pod.metadata.namespace == service.metadata.namespace
        and all(pod.metadata.labels.get(k) == v for k, v in selector.items())
    )


def desired_slices(service: Service, pods: Sequence[Pod]) -> list[dict[str, Any]]:
    if not service.spec.selector or not service.spec.ports:
        return []
    groups: dict[tuple[tuple[str, str, int], ...], list[Pod]] = {}
    for pod in pods:
        if not selects(service, pod) or not pod.status.pod_ip:
            continue
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        resolved = []
        for port in service.spec.ports:
            number = resolve_target_port(port, pod)
            if number is not None:
                resolved.append((port.name or "", port.protocol, number))
        groups.setdefault(tuple(resolved), []).append(pod)
    return [_slice(service, ports, members) for ports, members in sorted(groups.items())]


def _slice(
    service: Service, ports: tuple[tuple[str, str, int], ...], pods: list[Pod]
) -> dict[str, Any]:
    digest = hashlib.sha256(repr(ports).encode()).hexdigest()[:5]
    app_protocols = {p.name or "": p.app_protocol for p in service.spec.ports}
    slice_ports = []
    for name, protocol, number in ports:
        entry: dict[str, Any] = {"name": name, "protocol": protocol, "port": number}
        if app_protocols.get(name):
            entry["appProtocol"] = app_protocols[name]
        slice_ports.append(entry)
    endpoints = []
    for pod in sorted(pods, key=lambda p: p.status.pod_ip or ""):
        ready = is_ready(pod)
        endpoints.append(
            {
                "addresses": [pod.status.pod_ip],
                "conditions": {"ready": ready, "serving": ready, "terminating": False},
                "nodeName": pod.spec.node_name,
                "targetRef": {
                    "kind": "Pod",
                    "namespace": pod.metadata.namespace,
                    "name": pod.metadata.name,
                    "uid": pod.metadata.uid,
                },
            }
        )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service.metadata.name}-{digest}",
            "namespace": service.metadata.namespace,
            "labels": {SERVICE_NAME_LABEL: service.metadata.name, MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": service.metadata.name,
                    "uid": service.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": slice_ports,
    }


def slice_differs(have: dict[str, Any], want: dict[str, Any]) -> bool:
    """Does the served EndpointSlice lack what the controller wants in it?"""
    if any(have.get(f) != want[f] for f in ("addressType", "endpoints", "ports")):
        return True
    meta, wanted = have["metadata"], want["metadata"]
    labels = meta.get("labels") or {}
    return (
        any(labels.get(k) != v for k, v in wanted["labels"].items())
        or meta.get("ownerReferences") != wanted["ownerReferences"]
    )


def updated_slice(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """``want`` at ``have``'s identity and resourceVersion (an update, not a blind write)."""
    meta = have["metadata"]
    return {
        **want,
        "metadata": {
            **meta,
            "labels": {**(meta.get("labels") or {}), **want["metadata"]["labels"]},
            "ownerReferences": want["metadata"]["ownerReferences"],
        },
    }
