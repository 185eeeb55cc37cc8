"""Builders of Ingress-side objects for the serving tests, read through the one converter."""

from __future__ import annotations

from typing import Any

from agent.model.convert import from_dict
from agent.model.ingress import Ingress, IngressClass
from gatewayapi.types import INGRESS_CONTROLLER_NAME

NET = "networking.k8s.io/v1"


def ingress_class(
    name: str = "tulle", controller: str = INGRESS_CONTROLLER_NAME, default: bool = False
) -> IngressClass:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": "true"}
    obj = from_dict(
        {"apiVersion": NET, "kind": "IngressClass", "metadata": meta,
         "spec": {"controller": controller}}
    )
    assert isinstance(obj, IngressClass)
    return obj


def backend(service: str, port: int | str = 8080) -> dict[str, Any]:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def path(value: str | None, backend_name: str, path_type: str = "Prefix") -> dict[str, Any]:
    out: dict[str, Any] = {"pathType": path_type, "backend": backend(backend_name)}
    if value is not None:
        out["path"] = value
    return out


def rule(host: str | None, *paths: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"http": {"paths": list(paths)}}
    if host is not None:
        out["host"] = host
    return out


def ingress(
    name: str = "web",
    *rules: dict[str, Any],
    namespace: str = "default",
    class_name: str | None = "tulle",
    annotations: dict[str, str] | None = None,
    default: str | None = None,
    tls: list[dict[str, Any]] | None = None,
    created: str = "2024-01-01T00:00:00Z",
    address: str | None = None,
) -> Ingress:
    spec: dict[str, Any] = {"rules": list(rules)}
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if default is not None:
        spec["defaultBackend"] = backend(default)
    if tls is not None:
        spec["tls"] = tls
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "creationTimestamp": created}
    if annotations:
        meta["annotations"] = annotations
    obj: dict[str, Any] = {"apiVersion": NET, "kind": "Ingress", "metadata": meta, "spec": spec}
    if address is not None:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": address}]}}
    made = from_dict(obj)
    assert isinstance(made, Ingress)
    return made
