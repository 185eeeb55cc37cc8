"""Small builders for model objects in controller tests (through the one converter)."""

from __future__ import annotations

from typing import Any

from agent.model.apps import Deployment
from agent.model.convert import from_dict
from agent.model.core import Pod, Service


def pod(
    name: str,
    *,
    ns: str = "shop",
    labels: dict[str, str] | None = None,
    node: str | None = None,
    ip: str | None = None,
    ready: bool = True,
    owner_uid: str | None = None,
    created: str = "2026-11-22T10:00:00Z",
    ports: list[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
) -> Pod:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "labels": labels or {},
        "uid": f"uid-{name}",
        "creationTimestamp": created,
    }
    if owner_uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "d",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    spec: dict[str, Any] = {"containers": [{"name": "c", "ports": ports or []}]}
    if node:
        spec["nodeName"] = node
    if node_selector:
        spec["nodeSelector"] = node_selector
    status: dict[str, Any] = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]
    }
    if ip:
        status["podIP"] = ip
        status["phase"] = "Running"
    obj = from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}
    )
    assert isinstance(obj, Pod)
    return obj


def deployment(
    name: str = "web", replicas: int = 2, image: str = "tulle/echo", uid: str = "dep-1"
) -> Deployment:
    obj = from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "generation": 3},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        }
    )
    assert isinstance(obj, Deployment)
    return obj


def service(
    name: str = "web",
    *,
    selector: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
) -> Service:
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "shop", "uid": f"svc-{name}"},
            "spec": {
                "selector": selector if selector is not None else {"app": name},
                "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        }
    )
    assert isinstance(obj, Service)
    return obj
